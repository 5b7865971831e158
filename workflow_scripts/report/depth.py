"""Colour-mapped depth (or disparity) maps next to their input frames.

Driving branch: disparities of the test split (``results/kitti/pred/<stage>/<split>_disps.npy``,
(N, H, W) float32 at the network's resolution) beside the full-size KITTI frames, each map
coloured with ``magma`` from its minimum to its 95th percentile, as monodepth2's
``test_simple.py`` shows them (disparities are relative; only their pattern is compared).

Endoscopy branch: depth maps (``depth.npz``: depth (N, H, W) float32, frame_indexes, K, mask)
beside the network-resolution frames, on one colour scale per figure (so that frames compare),
pixels outside the field-of-view mask black.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.report.figure import new_figure, plt
from workflow_scripts.util.images import read_image

__all__ = ["colorize", "depth_grid", "read_rgb", "robust_range", "select_frames"]


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


def depth_grid(images: Sequence[np.ndarray], maps: Sequence[np.ndarray], row_titles: Sequence[str],
               title: str, map_label: str, cmap: str = "magma",
               valid: Sequence[np.ndarray | None] | None = None,
               percentiles: tuple[float, float] = (0.0, 95.0), shared_scale: bool = False,
               panel_width_in: float = 4.5) -> plt.Figure:
    """One row per frame: the input frame, then its colour-mapped map stretched over the same
    extent (maps may be at a lower resolution than the frames, e.g. the network's).

    Args:
        images: K frames, (H_i, W_i, 3) uint8 RGB.
        maps: K maps, (h_i, w_i) float (disparity or depth; any unit).
        row_titles: K labels (frame names).
        title: figure title.
        map_label: what the colours show, with the unit ("disparity (relative)", "depth (mm)").
        cmap: matplotlib colour map.
        valid: K bool masks of the maps' shapes (None = all pixels valid).
        percentiles: colour range as percentiles of the valid values.
        shared_scale: one range over all maps (with a colour bar) instead of one per frame.
        panel_width_in: width of each panel in inches.
    """
    if not (len(images) == len(maps) == len(row_titles)) or not images:
        raise ValueError(f"depth_grid: {len(images)} images, {len(maps)} maps, {len(row_titles)} titles")
    valid = list(valid) if valid is not None else [None] * len(maps)
    aspect = max(im.shape[0] / im.shape[1] for im in images)
    fig, axes = new_figure(2 * panel_width_in, len(images) * panel_width_in * aspect + 0.6,
                           nrows=len(images), ncols=2)
    if shared_scale:
        stack = np.concatenate([m.ravel() for m in maps])
        masks = np.concatenate([(v if v is not None else np.ones(m.shape, bool)).ravel()
                                for m, v in zip(maps, valid, strict=True)])
        ranges = [robust_range(stack, masks, percentiles)] * len(maps)
    else:
        ranges = [robust_range(m, v, percentiles) for m, v in zip(maps, valid, strict=True)]
    for row, (image, dmap, mask, (lo, hi), name) in enumerate(
            zip(images, maps, valid, ranges, row_titles, strict=True)):
        h, w = image.shape[:2]
        axes[row, 0].imshow(image)
        axes[row, 1].imshow(colorize(dmap, lo, hi, cmap, mask), extent=(0, w, h, 0), interpolation="bilinear")
        axes[row, 0].text(0.01, 0.97, name, transform=axes[row, 0].transAxes, fontsize=8, va="top",
                          color="white", bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5, "lw": 0})
        if not shared_scale:
            axes[row, 1].set_ylabel(f"{lo:.3g} .. {hi:.3g}", fontsize=8)
            axes[row, 1].yaxis.set_label_position("right")
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("input frame", fontsize=10)
    axes[0, 1].set_title(map_label, fontsize=10)
    if shared_scale:
        mappable = plt.cm.ScalarMappable(norm=plt.Normalize(*ranges[0]), cmap=cmap)
        fig.colorbar(mappable, ax=axes[:, 1].tolist(), fraction=0.04, pad=0.02, label=map_label)
    fig.suptitle(title, fontsize=11)
    return fig
