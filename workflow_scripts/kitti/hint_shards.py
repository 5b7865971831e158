"""Shards of a drive's depth-hint precompute: one job per range of frame numbers, merged into the
drive's hint folder once every shard exists.

Shard ``k`` of a drive covers the frame numbers ``[k * shard_frames, (k + 1) * shard_frames)``;
the shard count follows from the drive's number of frames alone (known before any job runs), so
the DAG has one job per shard and a failure repeats one shard. The shards' ``.npy`` files are
hard-linked (copied across file systems) into ``results/kitti/depth_hints/<date>/<drive>/``,
which is what the training stages read.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from workflow_scripts.util import InputDataError, atomic_dir

__all__ = ["shard_count", "shard_frames_of", "count_drive_frames", "merge_shards"]


def shard_count(n_frames: int, shard_frames: int) -> int:
    """Shards of a drive with frame numbers ``0 .. n_frames - 1`` (at least 1)."""
    return max(1, math.ceil(n_frames / shard_frames))


def shard_frames_of(frames: Sequence[int], shard: int, shard_frames: int) -> list[int]:
    """The frame numbers of ``frames`` (sorted, unique) that fall into shard ``shard``."""
    lo, hi = shard * shard_frames, (shard + 1) * shard_frames
    return sorted({f for f in frames if lo <= f < hi})


def count_drive_frames(drive: Path) -> int:
    """Frames of a drive in the tree: one more than the largest frame number of image_02/data
    (frames are numbered from 0), 0 when the folder is missing (a dry run on a partial tree)."""
    folder = Path(drive) / "image_02" / "data"
    try:
        numbers = [int(name.split(".")[0]) for name in os.listdir(folder) if name.split(".")[0].isdigit()]
    except FileNotFoundError:
        return 0
    return max(numbers) + 1 if numbers else 0


def merge_shards(shards: Sequence[Path], out: Path) -> int:
    """Link every shard's ``image_0{2,3}/*.npy`` into ``out`` (written atomically as a whole).

    Returns: the number of files. Raises InputDataError for a shard without its camera folders or
    a frame that two shards both hold (shards of different settings mixed).
    """
    n = 0
    with atomic_dir(out) as tmp:
        for cam in ("image_02", "image_03"):
            (tmp / cam).mkdir()
        for shard in shards:
            for cam in ("image_02", "image_03"):
                src = Path(shard) / cam
                if not src.is_dir():
                    raise InputDataError(src, "missing in a finished hint shard",
                                         "delete the shard folder and re-run precompute_depth_hints")
                for path in sorted(src.glob("*.npy")):
                    dst = tmp / cam / path.name
                    if dst.exists():
                        raise InputDataError(path, "is also in another shard of the drive",
                                             "delete the drive's shard folders and re-run")
                    try:
                        os.link(path, dst)
                    except OSError:  # another file system, or no hard links there
                        shutil.copy2(path, dst)
                    n += 1
    return n
