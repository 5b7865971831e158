"""Shared helpers of the depth figures: which frames to show, a robust colour range, colour
mapping with invalid pixels black, and reading a frame as RGB. The figures themselves are in
``kitti_depth.py`` (driving: frames x stages with ground truth and error maps),
``endo_depth.py`` (endoscopy: depth maps with the SfM sparse points) and
``plot_kitti_masking.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.report.figure import plt
from workflow_scripts.util.images import read_image

__all__ = ["colorize", "read_rgb", "robust_range", "select_frames"]


def select_frames(n_total: int, n_show: int) -> np.ndarray:
    """``n_show`` indices spread evenly over ``range(n_total)``, first and last included
    (all of them when there are fewer). (K,) int64, sorted, unique."""
    if n_total <= 0 or n_show <= 0:
        return np.zeros(0, np.int64)
    if n_show >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_total - 1, n_show)).astype(np.int64))


def robust_range(values: np.ndarray, valid: np.ndarray | None = None,
                 percentiles: tuple[float, float] = (0.0, 95.0)) -> tuple[float, float]:
    """(vmin, vmax): the given percentiles of the finite, valid values; (0, 1) if none.

    Args:
        values: any shape, float.
        valid: bool mask of the same shape (True = use), or None for all finite values.
        percentiles: lower and upper percentile in [0, 100]; monodepth2 uses (min, 95).
    """
    keep = np.isfinite(values)
    if valid is not None:
        keep &= valid.astype(bool)
    if not keep.any():
        return 0.0, 1.0
    lo, hi = np.percentile(values[keep], percentiles)
    if not hi > lo:
        hi = lo + max(abs(lo) * 1e-6, 1e-12)
    return float(lo), float(hi)


def colorize(values: np.ndarray, vmin: float, vmax: float, cmap: str = "magma",
             valid: np.ndarray | None = None) -> np.ndarray:
    """Colour-map a 2-D map: (H, W) float -> (H, W, 3) float RGB in [0, 1].

    Values are clipped to [vmin, vmax]; invalid (mask False) and non-finite pixels are black.
    """
    if values.ndim != 2:
        raise ValueError(f"colorize: expected an (H, W) map, got shape {values.shape}")
    norm = np.clip((values.astype(np.float64) - vmin) / (vmax - vmin), 0.0, 1.0)
    bad = ~np.isfinite(values)
    if valid is not None:
        bad |= ~valid.astype(bool)
    rgb = plt.get_cmap(cmap)(np.where(bad, 0.0, norm))[..., :3]
    rgb[bad] = 0.0
    return rgb


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; a clear error when it is missing or unreadable."""
    image = read_image(path, fix="re-run the rule that writes the frames")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
