"""Which split lists the configuration names: the references' lists by name, or your own files.

A test split (``kitti.evaluate.split``, ``kitti.gt.splits``) is ``eigen``, ``eigen_benchmark``
or the path of a split file in monodepth2's format (``<date>/<drive> <frame> <l|r>`` per line).
Its *key* names every output of the split: the standard name, or the file's stem
(``splits/night.txt`` -> ``results/kitti/gt/night.npz``, ``results/kitti/splits/night/``).
A file's ground truth is the LiDAR scan projected as for ``eigen``, and it is evaluated with
the Eigen protocol (Garg crop); only ``eigen_benchmark`` uses KITTI's annotated depth maps.

The train/val source (``kitti.splits.standard``) is ``eigen_zhou``, ``eigen_full`` or a folder in
monodepth2's layout (``splits/<name>/``) holding ``train_files.txt`` and ``val_files.txt``.

:func:`check_split_frames` is what the workflow runs on every configured file before any job
(rules/common.smk): the first line whose frame is missing from the tree is named, with the
number of such lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from workflow_scripts.kitti.raw import image_path, velodyne_path
from workflow_scripts.kitti.split_files import STANDARD_DIR, TEST_SPLITS, SplitLine, read_split
from workflow_scripts.util import InputDataError

__all__ = [
    "TRAIN_SPLITS",
    "split_key",
    "split_file",
    "keyed_test_splits",
    "train_split_folder",
    "missing_frames",
    "check_split_frames",
    "check_configured_splits",
]

TRAIN_SPLITS = ("eigen_zhou", "eigen_full")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def split_file(entry: str) -> Path | None:
    """The split file a test-split entry names, or None for a standard name."""
    return None if entry in TEST_SPLITS else Path(entry)


def split_key(entry: str) -> str:
    """The name of a test split's outputs: the standard name, or the file's stem.

    Raises:
        InputDataError: a file whose stem is a standard name or unusable in a path.
    """
    path = split_file(entry)
    if path is None:
        return entry
    if path.suffix != ".txt" and "/" not in entry:
        raise InputDataError(
            path,
            f"is neither a standard test split ({', '.join(TEST_SPLITS)}) nor a split file (*.txt)",
            "name eigen or eigen_benchmark, or the path of a split file in monodepth2's format",
        )
    key = path.stem
    if key in TEST_SPLITS or key in TRAIN_SPLITS or not _KEY.match(key):
        raise InputDataError(
            path,
            f"the file's name {key!r} would name the split's outputs but "
            + ("is a standard split's name" if _KEY.match(key) else "holds characters unfit for a path"),
            "rename the file (letters, digits, '_', '-', '.'), e.g. my_split.txt",
        )
    return key


def keyed_test_splits(entries: Iterable[str]) -> dict[str, str]:
    """Key -> entry of the test splits, in order, each once.

    Raises:
        InputDataError: two different entries with the same key (two files with one stem).
    """
    keys: dict[str, str] = {}
    for entry in entries:
        key = split_key(entry)
        if key in keys and Path(keys[key]) != Path(entry):
            raise InputDataError(
                Path(entry),
                f"has the same name {key!r} as {keys[key]}, and the name is the outputs' folder",
                "rename one of the two split files",
            )
        keys.setdefault(key, entry)
    return keys


def train_split_folder(standard: str) -> Path:
    """The folder of a train/val source: the shipped list's, or the configured folder.

    Raises:
        InputDataError: a folder without ``train_files.txt`` and ``val_files.txt``.
    """
    folder = STANDARD_DIR / standard if standard in TRAIN_SPLITS else Path(standard)
    for name in ("train_files.txt", "val_files.txt"):
        if not (folder / name).is_file():
            raise InputDataError(
                folder / name,
                "not found: kitti.splits.standard names eigen_zhou, eigen_full or a folder in "
                "monodepth2's layout holding train_files.txt and val_files.txt",
                "create the file (an empty val_files.txt validates on nothing), or fix kitti.splits.standard",
            )
    return folder


def missing_frames(
    lines: Sequence[SplitLine], raw_root: Path, image_root: Path, ext: str, scans: bool
) -> list[tuple[int, SplitLine, Path]]:
    """(line number from 1, line, missing path) of every line whose own image (its side), or
    with ``scans`` its Velodyne scan, is not in the tree."""
    out = []
    for n, line in enumerate(lines, 1):
        need = [image_path(Path(image_root) / line.folder, line.cam, line.frame, ext)]
        if scans:
            need.append(velodyne_path(Path(raw_root) / line.folder, line.frame))
        gone = next((p for p in need if not p.is_file()), None)
        if gone is not None:
            out.append((n, line, gone))
    return out


def check_split_frames(
    path: Path, raw_root: Path, image_root: Path, ext: str, scans: bool
) -> list[SplitLine]:
    """Read a split file and check that every frame it names is in the tree.

    Args:
        path: the split file (malformed lines are named by :func:`read_split`).
        raw_root: the KITTI raw root (scans); image_root: where the colour images are.
        scans: also require each frame's Velodyne scan (a test split's ground truth).
    Returns: the file's lines.
    Raises:
        InputDataError: naming the file, the first missing frame and how many lines miss one.
    """
    lines = read_split(path)
    if not lines:
        raise InputDataError(path, "holds no frames", "list one '<date>/<drive> <frame> <l|r>' per line")
    missing = missing_frames(lines, raw_root, image_root, ext, scans)
    if missing:
        n, line, gone = missing[0]
        raise InputDataError(
            path,
            f"{len(missing)} of its {len(lines)} lines name a frame that is not in the tree; the "
            f"first is line {n} ({line.text()}): {gone} does not exist",
            "extract those drives into kitti.root (and check kitti.image_ext), or remove the lines",
        )
    return lines


def check_configured_splits(
    test_entries: Iterable[str], standard: str, raw_root: Path, image_root: Path, ext: str
) -> None:
    """Check every configured split file (test files with their scans, and a train/val folder)
    against the tree: what the workflow runs before any job on real data."""
    for entry in test_entries:
        path = split_file(entry)
        if path is not None:
            check_split_frames(path, raw_root, image_root, ext, scans=True)
    if standard not in TRAIN_SPLITS:
        folder = train_split_folder(standard)
        for name in ("train_files.txt", "val_files.txt"):
            if (folder / name).stat().st_size:
                check_split_frames(folder / name, raw_root, image_root, ext, scans=False)
