"""Stages ``make_test_split`` and ``make_splits``: which frames are tested, trained, validated.

* Test splits (``results/kitti/splits/<split>/test_files.txt``): on real KITTI the shipped
  ``eigen`` / ``eigen_benchmark`` lists, after checking that every frame they name exists; on
  the demo, every ``stride``-th frame of the held-out drives (like Eigen's test drives, which
  no training list touches).
* Train/val lists (``results/kitti/splits/{train,val}_files.txt``):
  ``standard``: the references' lists (eigen_zhou or eigen_full), checked against the tree;
  ``filtered``: the frames that ``filter_frames`` kept, on the drives of no test split, with
  both temporal-neighbour conventions satisfied: frames ``f - 1`` and ``f + 1`` exist
  (monodepth2 loads those) and ``f`` is neither the first nor the last kept frame (SC-Depth
  takes the adjacent kept frames); one line per side. A seeded fraction of the frames (with
  all their sides) goes to val.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

import numpy as np

from workflow_scripts.kitti.gt_depth import groundtruth_png_path
from workflow_scripts.kitti.raw import image_path, velodyne_path
from workflow_scripts.kitti.split_config import train_split_folder
from workflow_scripts.kitti.split_files import SplitLine, check_frames_exist, list_frames, read_split
from workflow_scripts.util import InputDataError
from workflow_scripts.util.options import option

log = logging.getLogger(__name__)

__all__ = [
    "SplitSource",
    "SplitOptions",
    "demo_test_lines",
    "check_test_split",
    "training_frames",
    "filtered_train_val",
    "standard_train_val",
]


class SplitSource(StrEnum):
    STANDARD = "standard"
    FILTERED = "filtered"


@dataclass(frozen=True, kw_only=True)
class SplitOptions:
    """Train/val lists (rule make_splits -> results/kitti/splits/{train,val}_files.txt, lines
    "<date>/<drive> <frame> <l|r>" as monodepth2's)."""

    source: Literal["auto", "standard", "filtered"] = option(
        "auto",
        "auto = standard on real KITTI, filtered on the demo; standard = the references' list named by "
        "`standard`; filtered = the frames filter_frames keeps on the drives of that list (demo: on the "
        "drives not held out for testing), with frames f-1 and f+1 present.",
    )
    standard: str = option(
        "eigen_zhou",
        "eigen_zhou (monodepth2's default, 39,810 / 4,424 lines), eigen_full (Depth Hints, "
        "45,200 / 1,776 lines), or the path of your own folder in monodepth2's layout holding "
        "train_files.txt and val_files.txt, written with a '/' (splits/mine; checked like eigen_zhou: "
        "with the neighbours f-1, f+1).",
        pattern="^(eigen_zhou|eigen_full|.*/.*)$",
    )
    sides: tuple[Literal["l", "r"], ...] = option(
        ("l", "r"),
        "Sides written for each filtered frame (l = image_02, r = image_03).",
        minItems=1,
        uniqueItems=True,
    )
    val_fraction: float = option(
        0.1, "Fraction of the filtered frames (seeded by `seed`) that go to val.", minimum=0, maximum=0.9
    )
    missing: Literal["drop", "error"] = option(
        "drop",
        "A training frame whose stereo partner, temporal neighbour or LiDAR scan is missing: drop = leave "
        "it out of the lists (make_splits' log counts and names them); error = stop.",
    )
    seed: int = field(default=0)


def demo_test_lines(image_root: Path, folders: Sequence[str], stride: int, ext: str) -> list[SplitLine]:
    """Every ``stride``-th frame (left image) of the held-out drives ``folders``."""
    lines = []
    for folder in folders:
        frames = list_frames(Path(image_root) / folder, 2, ext)
        lines += [SplitLine(folder, f, "l") for f in frames[::stride]]
    return lines


def check_test_split(
    lines: list[SplitLine], split: str, raw_root: Path, image_root: Path, ext: str, list_path: Path
) -> None:
    """Every frame of a test split has its image and its ground-truth source (Velodyne scan
    for eigen, annotated depth map for eigen_benchmark)."""
    check_frames_exist(lines, image_root, ext, list_path, sides=("l",))
    for n, line in enumerate(lines, 1):
        drive = Path(raw_root) / line.folder
        need = (
            groundtruth_png_path(drive, line.frame)
            if split == "eigen_benchmark"
            else velodyne_path(drive, line.frame)
        )
        if not need.is_file():
            raise InputDataError(
                list_path,
                f"line {n} ({line.text()}) needs {need}, which does not exist",
                "complete the KITTI raw tree (velodyne_points; for eigen_benchmark the "
                "annotated depth maps), or drop the split from kitti.gt.splits",
            )


def complete_frames(raw_drive: Path, image_drive: Path, ext: str) -> set[int]:
    """Frame numbers of a drive with both colour images (image_02, image_03) and a Velodyne scan."""
    scans = Path(raw_drive) / "velodyne_points" / "data"
    have_scan = {int(p.stem) for p in scans.glob("*.bin") if p.stem.isdigit()} if scans.is_dir() else set()
    return set(list_frames(image_drive, 2, ext)) & set(list_frames(image_drive, 3, ext)) & have_scan


def training_frames(kept: Sequence[int], frames: Sequence[int] | set[int]) -> list[int]:
    """Kept frame numbers usable as training targets: interior in ``kept`` (SC-Depth
    neighbours), complete themselves and with ``f - 1`` and ``f + 1`` complete (monodepth2
    neighbours); ``frames`` = the complete frames of the drive."""
    have = set(frames)
    return [f for f in kept[1:-1] if f - 1 in have and f in have and f + 1 in have]


def _report_missing(dropped: list[str], where: Path, missing: str) -> None:
    """Log the frames left out for missing data, or stop when ``missing`` is "error"."""
    if not dropped:
        return
    first = ", ".join(dropped[:3]) + (" ..." if len(dropped) > 3 else "")
    if missing == "error":
        raise InputDataError(
            where,
            f"{len(dropped)} training frame(s) lack their stereo partner, a temporal "
            f"neighbour or their LiDAR scan (first: {first})",
            "complete those drives in kitti.root, or set kitti.splits.missing: drop to leave such frames out",
        )
    log.warning(
        "%s: left out %d training frame(s) whose stereo partner, temporal neighbour or LiDAR scan is "
        "missing (kitti.splits.missing: drop): %s",
        where,
        len(dropped),
        first,
    )


def _split_val(lines_by_frame: list[list[SplitLine]], options: SplitOptions) -> tuple[list, list]:
    n = len(lines_by_frame)
    n_val = int(round(options.val_fraction * n)) if n > 1 else 0
    val_ids = set(np.random.default_rng(options.seed).choice(n, size=n_val, replace=False).tolist())
    train = [line for i, group in enumerate(lines_by_frame) if i not in val_ids for line in group]
    val = [line for i, group in enumerate(lines_by_frame) if i in val_ids for line in group]
    return train, val


def filtered_train_val(
    kept_by_drive: Mapping[str, Sequence[int]],
    frames_by_drive: Mapping[str, Sequence[int]],
    test_lines: Sequence[SplitLine],
    options: SplitOptions,
    where: Path = Path("kitti.splits"),
) -> tuple[list, list]:
    """Train and val lines from the frame filter's output.

    Args:
        kept_by_drive: folder -> kept frame NUMBERS (frame_index mapped through the frame list).
        frames_by_drive: folder -> the complete frame numbers of the drive (both images, scan).
        test_lines: lines of all test splits; their drives are never used.
        where: the file or folder that errors and the log name.
    """
    test_drives = {line.folder for line in test_lines}
    groups, dropped = [], []
    for folder in sorted(kept_by_drive):
        if folder in test_drives:
            continue
        usable = training_frames(kept_by_drive[folder], frames_by_drive[folder])
        groups += [[SplitLine(folder, f, side) for side in options.sides] for f in usable]
        dropped += [f"{folder} {f}" for f in sorted(set(kept_by_drive[folder][1:-1]) - set(usable))]
    _report_missing(dropped, where, options.missing)
    if not groups:
        raise InputDataError(
            where,
            "no training frames: every kept frame lacks temporal neighbours or sits on a test drive",
            "train on more (or longer) drives, or lower kitti.filter.min_changed",
        )
    train, val = _split_val(groups, options)
    if options.val_fraction > 0 and not val:
        raise InputDataError(
            where,
            f"the validation list would be empty ({len(groups)} training frame(s) x val_fraction "
            f"{options.val_fraction} rounds to none)",
            "train on more frames, or set kitti.splits.val_fraction: 0 to validate on none",
        )
    return train, val


def standard_train_val(
    name: str,
    raw_root: Path,
    image_root: Path,
    ext: str,
    test_lines: Sequence[SplitLine],
    missing: str = "drop",
) -> tuple[list, list]:
    """A train/val pair, checked: the shipped ``name`` (eigen_zhou, eigen_full) or a folder holding
    train_files.txt and val_files.txt. No line may be on a drive of a test split, and a line whose
    image (with its neighbours +-1, except on eigen_full, which also lists first frames for stereo
    training), stereo partner or LiDAR scan is missing is dropped (counted in the log) or stops
    the run, per ``missing``."""
    test_drives = {line.folder for line in test_lines}
    offsets = (0,) if name == "eigen_full" else (-1, 0, 1)
    folder = train_split_folder(name)
    out, dropped = [], []
    for part in ("train", "val"):
        list_path = folder / f"{part}_files.txt"
        lines = read_split(list_path)
        for n, line in enumerate(lines, 1):
            if line.folder in test_drives:
                raise InputDataError(
                    list_path,
                    f"line {n} ({line.text()}) is on a test drive",
                    "train/val lists must not overlap the test split",
                )
        complete = [_line_complete(line, Path(raw_root), Path(image_root), ext, offsets) for line in lines]
        dropped += [line.text() for line, ok in zip(lines, complete, strict=True) if not ok]
        out.append([line for line, ok in zip(lines, complete, strict=True) if ok])
    _report_missing(dropped, folder, missing)
    if not out[0]:
        raise InputDataError(
            folder / "train_files.txt",
            "no line names a frame that kitti.root holds",
            "check kitti.root (and kitti.image_ext), or train on the filtered frames "
            "(kitti.splits.source: filtered)",
        )
    return out[0], out[1]


def _line_complete(
    line: SplitLine, raw_root: Path, image_root: Path, ext: str, offsets: tuple[int, ...]
) -> bool:
    """The line's images (its side at every offset, the other side at the frame) and its scan exist."""
    drive = image_root / line.folder
    cams = [(line.cam, line.frame + off) for off in offsets] + [(5 - line.cam, line.frame)]
    return (
        all(image_path(drive, cam, f, ext).is_file() for cam, f in cams)
        and velodyne_path(raw_root / line.folder, line.frame).is_file()
    )
