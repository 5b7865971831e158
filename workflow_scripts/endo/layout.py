"""Where the endoscopy inputs are: sequences, their patients, the train / test split and each
patient's CT surface (the rules' input functions call these; rules/common_endo.smk).

``endoscopy.root`` holds sequences directly (one patient, named "") or in patient folders::

    <root>/<seq>.mp4 | <root>/<seq>/*.jpg            a sequence of the unnamed patient
    <root>/<patient>/<seq>.mp4 | <root>/<patient>/<seq>/*.jpg
    <root>/<patient>/ct_surface.ply                  that patient's CT (mm)
    <root>/ct_surface.ply, <root>/camera.yaml        the unnamed patient's CT; the camera of all
    <root>/<patient>/camera.yaml                     a patient's own camera (optional)

With ``format: liu`` a sequence is a folder holding ``motion.yaml`` (the reference's SfM output),
at either level. A folder of ``root`` is a sequence when it holds frames (or motion.yaml), else a
patient when it holds sequences. Sequence names are their ids (``results/endo/<seq>/``), so they
are unique across patients.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.endo.video import VIDEO_SUFFIXES
from workflow_scripts.util import InputDataError

__all__ = ["EndoSequence", "discover", "resolve_split", "patient_ct", "patient_camera"]

_FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class EndoSequence:
    """A sequence: its name (id), its patient ("" = the root's own) and its video or folder."""

    name: str
    patient: str
    source: Path


def _as_sequence(path: Path, fmt: str) -> bool:
    if fmt == "liu":
        return path.is_dir() and (path / "motion.yaml").is_file()
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    return path.is_dir() and any(f.suffix.lower() in _FRAME_SUFFIXES for f in path.iterdir())


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def discover(root: str | Path, fmt: str = "video") -> list[EndoSequence]:
    """The sequences under ``root`` (both layouts), sorted by name.

    Raises:
        InputDataError: two sequences with the same name (in different patient folders).
    """
    root = Path(root)
    found: list[EndoSequence] = []
    for entry in _visible(root) if root.is_dir() else []:
        if _as_sequence(entry, fmt):
            found.append(EndoSequence(entry.stem if entry.is_file() else entry.name, "", entry))
        elif entry.is_dir():
            found += [EndoSequence(p.stem if p.is_file() else p.name, entry.name, p)
                      for p in _visible(entry) if _as_sequence(p, fmt)]
    by_name: dict[str, EndoSequence] = {}
    for seq in found:
        if seq.name in by_name:
            raise InputDataError(
                seq.source, f"has the same sequence name {seq.name!r} as {by_name[seq.name].source}",
                "rename one: sequence names are their ids (results/endo/<seq>/), unique across patients")
        by_name[seq.name] = seq
    return sorted(found, key=lambda s: s.name)


def resolve_split(sequences: list[EndoSequence], train: list[str], test: list[str]) -> dict[str, str]:
    """The side of every sequence, ``{name: "train" | "test"}``, from ``endoscopy.split``.

    ``train`` and ``test`` list sequence or patient names (a patient stands for all its
    sequences). ``train`` empty = every sequence not in ``test``; ``test`` empty = every sequence
    not in ``train``; both empty = everything trains (no test side).

    Raises:
        ValueError: a name that is neither a sequence nor a patient, a sequence on both sides or
            on neither (both lists given), or no training sequence.
    """
    names = {s.name for s in sequences}
    patients = {s.patient for s in sequences if s.patient}

    def expand(key: str, entries: list[str]) -> set[str]:
        out: set[str] = set()
        for entry in entries:
            if entry not in names and entry not in patients:
                raise ValueError(
                    f"config endoscopy.split.{key} names {entry!r}, which is neither a sequence nor a "
                    f"patient (sequences: {', '.join(sorted(names)) or 'none'}; patients: "
                    f"{', '.join(sorted(patients)) or 'none'}). Fix the name or endoscopy.root")
            out |= {s.name for s in sequences if entry in (s.name, s.patient)}
        return out

    on_train, on_test = expand("train", list(train)), expand("test", list(test))
    both = sorted(on_train & on_test)
    if both:
        raise ValueError(f"config endoscopy.split: sequence(s) {', '.join(both)} on both sides (train and "
                         "test, directly or through their patient). Keep a patient's sequences on one side")
    if train and test:
        neither = sorted(names - on_train - on_test)
        if neither:
            raise ValueError(f"config endoscopy.split: sequence(s) {', '.join(neither)} in neither train "
                             "nor test. Add them to one side, or leave train empty (= every sequence not in "
                             "test)")
    side = {n: "test" if (n in on_test or (train and n not in on_train)) else "train" for n in names}
    if names and "train" not in side.values():
        raise ValueError("config endoscopy.split: every sequence is on the test side; nothing to train on")
    return side


def patient_ct(root: str | Path, patient: str, mapping: dict[str, str], default: str = "") -> Path | None:
    """A patient's CT surface: ``endoscopy.ct_surfaces[patient]``, else
    ``<root>/<patient>/ct_surface.ply``; for the root's own sequences (patient "")
    ``endoscopy.ct_surface`` (``default``), else ``<root>/ct_surface.ply``. None when that file
    does not exist (the sequence gets depth metrics, no registration)."""
    root = Path(root)
    if patient in mapping:
        path = Path(mapping[patient])
    elif patient:
        path = root / patient / "ct_surface.ply"
    else:
        path = Path(default) if default else root / "ct_surface.ply"
    return path if path.is_file() else None


def patient_camera(root: str | Path, patient: str) -> Path:
    """``<root>/<patient>/camera.yaml`` when the patient has its own, else ``<root>/camera.yaml``."""
    own = Path(root) / patient / "camera.yaml"
    return own if patient and own.is_file() else Path(root) / "camera.yaml"
