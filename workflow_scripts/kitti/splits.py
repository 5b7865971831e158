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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

import numpy as np

from workflow_scripts.kitti.gt_depth import groundtruth_png_path
from workflow_scripts.kitti.raw import velodyne_path
from workflow_scripts.kitti.split_files import (
    STANDARD_DIR,
    SplitLine,
    check_frames_exist,
    list_frames,
    standard_split,
)
from workflow_scripts.util import InputDataError
from workflow_scripts.util.options import option

__all__ = ["SplitSource", "SplitOptions", "demo_test_lines", "check_test_split", "training_frames",
           "filtered_train_val", "standard_train_val"]


class SplitSource(StrEnum):
    STANDARD = "standard"
    FILTERED = "filtered"


@dataclass(frozen=True, kw_only=True)
class SplitOptions:
    """Train/val lists (rule make_splits -> results/kitti/splits/{train,val}_files.txt, lines
    "<date>/<drive> <frame> <l|r>" as monodepth2's)."""

    source: Literal["auto", "standard", "filtered"] = option(
        "auto", "auto = standard on real KITTI, filtered on the demo; standard = the references' list named by "
        "`standard`; filtered = the frames filter_frames keeps on the drives of that list (demo: on the drives "
        "not held out for testing), with frames f-1 and f+1 present.")
    standard: Literal["eigen_zhou", "eigen_full"] = option(
        "eigen_zhou", "eigen_zhou (monodepth2's default, 39,810 / 4,424 lines) or eigen_full (Depth Hints, "
        "45,200 / 1,776 lines).")
    sides: tuple[Literal["l", "r"], ...] = option(("l", "r"), "Sides written for each filtered frame (l = image_02, "
                                                  "r = image_03).", minItems=1, uniqueItems=True)
    val_fraction: float = option(0.1, "Fraction of the filtered frames (seeded by `seed`) that go to val.",
                                 minimum=0, maximum=0.9)
    seed: int = field(default=0)


def demo_test_lines(image_root: Path, folders: Sequence[str], stride: int, ext: str) -> list[SplitLine]:
    """Every ``stride``-th frame (left image) of the held-out drives ``folders``."""
    lines = []
    for folder in folders:
        frames = list_frames(Path(image_root) / folder, 2, ext)
        lines += [SplitLine(folder, f, "l") for f in frames[::stride]]
    return lines


def check_test_split(lines: list[SplitLine], split: str, raw_root: Path, image_root: Path, ext: str,
                     list_path: Path) -> None:
    """Every frame of a test split has its image and its ground-truth source (Velodyne scan
    for eigen, annotated depth map for eigen_benchmark)."""
    check_frames_exist(lines, image_root, ext, list_path, sides=("l",))
    for n, line in enumerate(lines, 1):
        drive = Path(raw_root) / line.folder
        need = groundtruth_png_path(drive, line.frame) if split.endswith("benchmark") else \
            velodyne_path(drive, line.frame)
        if not need.is_file():
            raise InputDataError(list_path, f"line {n} ({line.text()}) needs {need}, which does not exist",
                                 "complete the KITTI raw tree (velodyne_points; for eigen_benchmark the "
                                 "annotated depth maps), or drop the split from kitti.gt.splits")


def training_frames(kept: Sequence[int], frames: Sequence[int]) -> list[int]:
    """Kept frame numbers usable as training targets: interior in ``kept`` (SC-Depth
    neighbours) and with ``f - 1`` and ``f + 1`` in ``frames`` (monodepth2 neighbours)."""
    have = set(frames)
    return [f for f in kept[1:-1] if f - 1 in have and f + 1 in have]


def _split_val(lines_by_frame: list[list[SplitLine]], options: SplitOptions) -> tuple[list, list]:
    n = len(lines_by_frame)
    n_val = int(round(options.val_fraction * n)) if n > 1 else 0
    val_ids = set(np.random.default_rng(options.seed).choice(n, size=n_val, replace=False).tolist())
    train = [line for i, group in enumerate(lines_by_frame) if i not in val_ids for line in group]
    val = [line for i, group in enumerate(lines_by_frame) if i in val_ids for line in group]
    return train, val


def filtered_train_val(kept_by_drive: Mapping[str, Sequence[int]], frames_by_drive: Mapping[str, Sequence[int]],
                       test_lines: Sequence[SplitLine], options: SplitOptions) -> tuple[list, list]:
    """Train and val lines from the frame filter's output.

    Args:
        kept_by_drive: folder -> kept frame NUMBERS (frame_index mapped through the frame list).
        frames_by_drive: folder -> every frame number of the drive (both cameras present).
        test_lines: lines of all test splits; their drives are never used.
    """
    test_drives = {line.folder for line in test_lines}
    groups = []
    for folder in sorted(kept_by_drive):
        if folder in test_drives:
            continue
        for f in training_frames(kept_by_drive[folder], frames_by_drive[folder]):
            groups.append([SplitLine(folder, f, side) for side in options.sides])
    if not groups:
        raise ValueError("no training frames: every kept frame lacks temporal neighbours or sits on a test drive")
    return _split_val(groups, options)


def standard_train_val(name: str, image_root: Path, ext: str, test_lines: Sequence[SplitLine]) -> tuple[list, list]:
    """A shipped train/val pair, checked: every frame exists for the line's side (with its
    neighbours +-1 for eigen_zhou, the monocular-video split; eigen_full also lists first
    frames, for stereo training), and no line is on a drive of a test split."""
    test_drives = {line.folder for line in test_lines}
    offsets = (-1, 0, 1) if name == "eigen_zhou" else (0,)
    out = []
    for part in ("train", "val"):
        lines = standard_split(name, part)
        list_path = STANDARD_DIR / name / f"{part}_files.txt"
        for n, line in enumerate(lines, 1):
            if line.folder in test_drives:
                raise InputDataError(list_path, f"line {n} ({line.text()}) is on a test drive",
                                     "train/val lists must not overlap the test split")
        check_frames_exist(lines, image_root, ext, list_path, offsets=offsets)
        out.append(lines)
    return out[0], out[1]
