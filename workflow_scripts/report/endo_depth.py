"""Endoscopy depth maps with the SfM sparse points on them: one column per frame, the frame as
the network sees it above its depth map; the sparse points of that view (sfm_data.npz:
``sparse_xy`` pixel, ``sparse_z`` camera depth, SfM units) are circles at their projected
pixels, coloured by their depth on the map's colour scale, with a thin white outline. One colour
scale for every frame of the figure (percentiles of the depths inside the field-of-view mask).

Inputs: ``results/endo/pred/<stage>/<seq>/depth.npz`` (depth (N, H, W) float32, SfM units,
frame_indexes (N,), mask (H, W)) and ``results/endo/<seq>/sfm_data.npz`` (keys in
``workflow_scripts.endo.sparse.SFM_DATA_KEYS``; pixels in the same (H, W) network image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workflow_scripts.report.depth import colorize, robust_range
from workflow_scripts.report.figure import new_figure, plt

__all__ = ["SPARSE_KEYS", "SparsePoints", "endo_depth_figure", "sparse_points_of"]

SPARSE_KEYS = ("view_indexes", "sparse_view", "sparse_xy", "sparse_z")


@dataclass(frozen=True)
class SparsePoints:
    """The SfM sparse points of one frame: pixel (x right, y down) (M, 2) int of the network
    image and camera depth (M,) float, SfM units; ``total`` = how many the view has (M may be a
    subset)."""

    xy: np.ndarray
    z: np.ndarray
    total: int


def sparse_points_of(sfm: dict, frame_index: int, max_points: int | None = None,
                     seed: int = 0) -> SparsePoints:
    """The sparse points of the view whose frame index is ``frame_index`` (none when SfM did not
    register it), at most ``max_points`` of them (a seeded random subset).

    Args:
        sfm: sfm_data arrays ``SPARSE_KEYS``: view_indexes (V,), sparse_view (M,) view row of
            each sample, sparse_xy (M, 2) int pixel, sparse_z (M,) depth.
    """
    views = np.flatnonzero(np.asarray(sfm["view_indexes"]) == frame_index)
    if not len(views):
        return SparsePoints(np.zeros((0, 2), np.int64), np.zeros(0), 0)
    rows = np.flatnonzero(np.asarray(sfm["sparse_view"]) == views[0])
    total = len(rows)
    if max_points is not None and total > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_points, replace=False))
    return SparsePoints(np.asarray(sfm["sparse_xy"])[rows].astype(np.int64),
                        np.asarray(sfm["sparse_z"], np.float64)[rows], total)


def _ratio(dmap: np.ndarray, points: SparsePoints) -> float:
    """Median of depth map / sparse depth at the points' pixels (NaN without points)."""
    h, w = dmap.shape
    x, y = points.xy[:, 0], points.xy[:, 1]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h) & (points.z > 0)
    if not inside.any():
        return float("nan")
    return float(np.median(dmap[y[inside], x[inside]] / points.z[inside]))


def endo_depth_figure(images: Sequence[np.ndarray], maps: Sequence[np.ndarray], valid: np.ndarray,
                      sparse: Sequence[SparsePoints], labels: Sequence[str], title: str, unit: str,
                      cmap: str = "magma_r", percentiles: tuple[float, float] = (2.0, 98.0),
                      panel_in: float = 3.0) -> plt.Figure:
    """Frames (top row) above their depth maps with the sparse points (bottom row), one colour
    scale and colour bar for all maps and points.

    Args:
        images: K frames (H, W, 3) uint8 RGB at the maps' resolution.
        maps: K depth maps (H, W) float, ``unit``.
        valid: (H, W) bool field-of-view mask (outside: black).
        sparse: K ``SparsePoints`` (pixels of the (H, W) image, depth in ``unit``).
        labels: K column titles (frame names).
        title: figure title. unit: depth unit (colour bar label).
        cmap: colour map (near = bright with magma_r). percentiles: the colour range.
        panel_in: width of a panel, inches.
    """
    k = len(images)
    if not (k == len(maps) == len(sparse) == len(labels)) or not k:
        raise ValueError(f"endo_depth_figure: {len(images)} images, {len(maps)} maps, "
                         f"{len(sparse)} point sets, {len(labels)} labels")
    h, w = maps[0].shape
    lo, hi = robust_range(np.stack(maps), np.broadcast_to(valid, (k, h, w)), percentiles)
    fig, axes = new_figure(k * panel_in + 1.0, 2 * panel_in * h / w + 1.0, nrows=2, ncols=k,
                           layout="constrained")
    norm = plt.Normalize(lo, hi)
    for col, (image, dmap, points, label) in enumerate(zip(images, maps, sparse, labels, strict=True)):
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(image, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        top.set_title(label, fontsize=10)
        bottom.imshow(colorize(dmap, lo, hi, cmap, valid), extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                      interpolation="nearest")
        if len(points.z):
            # the outline contrasts with the fill (white around dark, black around light colours):
            # a point shows even where it has the colour of the map under it
            fill = plt.get_cmap(cmap)(np.clip(norm(points.z), 0.0, 1.0))
            dark = fill[:, :3] @ np.array([0.299, 0.587, 0.114]) < 0.5
            bottom.scatter(points.xy[:, 0], points.xy[:, 1], c=fill, s=12, linewidths=0.6,
                           edgecolors=np.where(dark[:, None], [[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0, 1.0]]))
            bottom.set_xlabel(f"{len(points.z)} of {points.total} sparse points\n"
                              f"map / sparse depth: median {_ratio(dmap, points):.2f}", fontsize=8)
        else:
            bottom.set_xlabel("no sparse points (view not registered)", fontsize=8)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
    axes[0, 0].set_ylabel("frame (network input)", fontsize=9)
    axes[1, 0].set_ylabel("depth + SfM sparse points", fontsize=9)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[1, :].tolist(), fraction=0.03,
                       pad=0.01, extend="both")
    bar.set_label(f"depth ({unit})", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    fig.suptitle(title, fontsize=11)
    return fig
