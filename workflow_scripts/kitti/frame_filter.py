"""Frame-index selection of video (stage ``filter_frames``; SC-Depth, seed_methods.md §5.1).

Keep frame 0; keep a later frame when at least ``min_changed`` (0.5) of its grayscale pixels
differ by more than ``threshold`` (10) from the LAST KEPT frame. The reference computes the
difference in uint8, which wraps around (a pixel that got brighter by 1 counts as changed);
``Arithmetic.SIGNED`` (default) takes the true absolute difference, ``Arithmetic.UINT8``
reproduces the reference. ``method: stride`` keeps every ``stride``-th frame instead (the
reference author's advice for slow or synthetic video).

Output: ``frame_index.txt``, one 0-based index into the sorted frame list per line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.util import InputDataError, write_text_atomic
from workflow_scripts.util.images import read_image
from workflow_scripts.util.options import option

__all__ = [
    "Arithmetic",
    "FilterMethod",
    "FilterOptions",
    "changed_fraction",
    "select_frames",
    "filter_images",
    "read_gray",
    "write_frame_index",
    "read_frame_index",
]


class Arithmetic(StrEnum):
    SIGNED = "signed"  # |g1 - g2| in int16
    UINT8 = "uint8"  # the reference: (g1 - g2) mod 256, no real absolute value


class FilterMethod(StrEnum):
    DIFFERENCE = "difference"
    STRIDE = "stride"


@dataclass(frozen=True, kw_only=True)
class FilterOptions:
    """Frame-index selection (rule filter_frames, SC-Depth): keep a frame when at least
    min_changed of its grayscale pixels differ by more than threshold from the last KEPT frame;
    drops standing frames. Writes results/kitti/frame_index/<date>/<drive>.txt. Defaults =
    SC-Depth, with correct arithmetic."""

    method: FilterMethod = option(
        FilterMethod.DIFFERENCE, "difference (as above) or stride (keep every stride-th frame)."
    )
    threshold: int = option(
        10, "Grey-level difference (8-bit) above which a pixel counts as changed.", minimum=0, maximum=254
    )
    min_changed: float = option(0.5, "Fraction of changed pixels that keeps a frame.", minimum=0, maximum=1)
    arithmetic: Arithmetic = option(
        Arithmetic.SIGNED,
        "signed = the true absolute difference; uint8 = the "
        "reference's wrap-around arithmetic (every pixel that got brighter by 1 counts "
        "as changed).",
    )
    stride: int = option(1, "Frame step of method stride.", minimum=1)


def changed_fraction(
    last_kept: np.ndarray, current: np.ndarray, threshold: int, arithmetic: Arithmetic = Arithmetic.SIGNED
) -> float:
    """Fraction of pixels of two (H, W) uint8 grayscale frames whose difference exceeds
    ``threshold``, with the difference taken as ``last_kept - current`` (the reference's order)."""
    if last_kept.shape != current.shape or last_kept.dtype != np.uint8 or current.dtype != np.uint8:
        raise ValueError(
            f"need two uint8 frames of one size, got {last_kept.dtype}{last_kept.shape} "
            f"and {current.dtype}{current.shape}"
        )
    if arithmetic == Arithmetic.UINT8:
        diff = last_kept - current  # wraps modulo 256, as numpy uint8 in the reference
    else:
        diff = np.abs(last_kept.astype(np.int16) - current.astype(np.int16))
    return float(np.count_nonzero(diff > threshold)) / diff.size


def select_frames(frames: Iterable[np.ndarray], options: FilterOptions = FilterOptions()) -> list[int]:
    """0-based indices of the kept frames of a sequence of (H, W) uint8 grayscale frames
    (consumed one by one, so a long drive is never held in memory)."""
    if options.method == FilterMethod.STRIDE:
        return [i for i, _ in enumerate(frames) if i % options.stride == 0]
    kept: list[int] = []
    last = None
    for i, gray in enumerate(frames):
        if (
            last is None
            or changed_fraction(last, gray, options.threshold, options.arithmetic) >= options.min_changed
        ):
            kept.append(i)
            last = gray
    return kept


def read_gray(path: Path) -> np.ndarray:
    """Grayscale as the reference makes it: decode in colour, then ``BGR2GRAY``."""
    img = read_image(path, fix="re-extract the drive's images")
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def filter_images(paths: Sequence[Path], options: FilterOptions = FilterOptions()) -> list[int]:
    """Kept indices into ``paths`` (the drive's frames in order)."""
    if not paths:
        raise ValueError("no frames to filter")
    if options.method == FilterMethod.STRIDE:
        return list(range(0, len(paths), options.stride))
    return select_frames((read_gray(p) for p in paths), options)


def write_frame_index(path: str | Path, kept: Sequence[int]) -> None:
    """One index per line, as the reference's ``np.savetxt(fmt='%d', delimiter='\\n')``."""
    write_text_atomic(path, "".join(f"{i}\n" for i in kept))


def read_frame_index(path: str | Path) -> list[int]:
    path = Path(path)
    try:
        return [int(t) for t in path.read_text().split()]
    except (OSError, ValueError) as err:
        raise InputDataError(path, f"not a frame index file ({err})", "re-run rule filter_frames") from err
