"""Eigen-protocol ground-truth depth from Velodyne scans, and annotated depth PNGs.

Reproduces monodepth2's ``generate_depth_map`` / ``export_gt_depth.py`` (seed_methods.md
§4.1-4.2), vectorised:

* projection ``P_rect_0{cam} @ R_rect_00 @ velo_to_cam`` of the points with ``x >= 0``
  (x = LiDAR forward), in float64 as the reference;
* pixel = ``round(p / z) - 1`` (KITTI's 1-based calibration to 0-based array indices), kept when
  inside the image whose size is read from ``S_rect_02`` (also for camera 3, as the reference);
* depth = LiDAR forward x (``DepthSource.VELODYNE``, the reference's ``vel_depth=True`` used
  for the eigen split) or camera z (``DepthSource.CAMERA``);
* every point is written (the last write wins), then each group of points sharing a linear
  index gets the minimum depth of the group, written at the location of the group's first
  point. ``DuplicateIndex.REFERENCE`` (the default) uses the reference's index
  ``v * (W - 1) + u - 1``, which also merges the pairs ``(v, W-1)`` and ``(v+1, 0)``;
  published numbers were computed on that ground truth. ``DuplicateIndex.EXACT`` uses the
  true index ``v * W + u`` (per-pixel minimum);
* negative depths are set to 0 (0 = no ground truth).

The eigen_benchmark split reads KITTI's annotated depth maps instead
(``proj_depth/groundtruth/image_02/<frame>.png``, uint16 = metres x 256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.kitti.calib import KittiRig
from workflow_scripts.kitti.raw import read_velodyne
from workflow_scripts.util import InputDataError
from workflow_scripts.util.images import read_image
from workflow_scripts.util.options import option

__all__ = [
    "DepthSource",
    "DuplicateIndex",
    "GtOptions",
    "lidar_depth_pixels",
    "lidar_depth_map",
    "densify",
    "velodyne_gt",
    "png_depth_map",
    "groundtruth_png_path",
]

PNG_DEPTH_SCALE = 256.0  # KITTI annotated depth: uint16 = metres * 256


class DepthSource(StrEnum):
    VELODYNE = "velodyne"  # LiDAR forward distance x (the reference's vel_depth=True)
    CAMERA = "camera"  # z in the rectified camera


class DuplicateIndex(StrEnum):
    REFERENCE = "reference"  # the reference's sub2ind: v * (W - 1) + u - 1
    EXACT = "exact"  # v * W + u


@dataclass(frozen=True, kw_only=True)
class GtOptions:
    """How ground truth is made from a Velodyne scan (defaults: the eigen split's reference)."""

    depth: DepthSource = option(
        DepthSource.VELODYNE,
        "Depth of a LiDAR point: velodyne = its forward "
        "distance x (the reference's eigen ground truth, vel_depth=True), camera = its "
        "z in the rectified camera.",
    )
    duplicates: DuplicateIndex = option(
        DuplicateIndex.REFERENCE,
        "Points falling on one pixel keep the minimum "
        "depth. reference = the reference's linear index v*(W-1)+u-1, which "
        "also merges pixel pairs (v, W-1) and (v+1, 0); published numbers use "
        "it. exact = per pixel.",
    )
    cam: int = field(default=2)


def _rounds_into(x: np.ndarray, size: int) -> np.ndarray:
    """(N,) bool: ``1 <= np.round(x) <= size``, decided on the unrounded ``x`` (no rounding pass).

    ``np.round`` is monotone and rounds half to even: ``round(0.5) = 0`` and
    ``round(size + 0.5) = size`` exactly when ``size`` is even. NaN and inf give False.

    Args:
        x: (N,) float64 1-based pixel coordinates (u or v after the perspective division).
        size: image width (for u) or height (for v) in pixels.
    """
    inside = np.greater(x, 0.5)
    inside &= (np.less_equal if size % 2 == 0 else np.less)(x, size + 0.5)
    return inside


def _resolve_pixels(
    pixel: np.ndarray, depth: np.ndarray, width: int, duplicates: DuplicateIndex
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's rasterisation, from a stable sort instead of a dense map and a loop.

    Per pixel the last point (in scan order) is written; then every group of points sharing
    the duplicate index gets its minimum at the pixel of its first point. The reference index
    ``v * (W - 1) + u - 1 = pixel - v - 1`` never decreases with the pixel index, so both kinds
    of groups are runs of the pixel-sorted points (the reference's also join a run ending at
    ``(v, W-1)`` with one starting at ``(v+1, 0)``). Duplicates are few (a handful per scan):
    after the sort only the steps of 0 (same pixel) or 1 (maybe a row wrap) are looked at.

    Args:
        pixel: (M,) int64 linear pixel ``v * W + u`` of each point, in scan order;
        depth: (M,) depth of each point (any float dtype: the minimum commutes with a cast).
    Returns:
        index: (K,) int64 ascending unique pixels; values: (K,) their depth (may be <= 0).
    """
    order = np.argsort(pixel, kind="stable")  # stable: the points of a pixel stay in scan order
    index, values = pixel.take(order), depth.take(order)
    step = np.diff(index)  # >= 0
    links = np.flatnonzero(step <= 1 if duplicates == DuplicateIndex.REFERENCE else step == 0)
    if links.size == 0:
        return index, values
    # link i: sorted points i and i + 1 share the duplicate index (a step of 1: a row wrap only)
    same_pixel = step[links] == 0
    joined = links
    if duplicates == DuplicateIndex.REFERENCE:
        joined = links[same_pixel | (index[links + 1] % width == 0)]
    if joined.size:
        # each link's minimum depth and first scan position; a group = a run of consecutive links
        minimum = np.minimum(values[joined], values[joined + 1])
        first = np.minimum(order[joined], order[joined + 1])
        run = np.flatnonzero(np.diff(joined, prepend=-2) != 1)
        if run.size < joined.size:
            minimum, first = np.minimum.reduceat(minimum, run), np.minimum.reduceat(first, run)
        # onto the pixel's last point in the sort: the one kept below
        values[np.searchsorted(index, pixel[first], side="right") - 1] = minimum
    overwritten = links[same_pixel]  # the last point of a pixel wins
    if overwritten.size == 0:
        return index, values
    kept = np.ones(index.size, bool)
    kept[overwritten] = False
    return index[kept], values[kept]


def lidar_depth_pixels(
    points: np.ndarray, velo_to_image: np.ndarray, image_hw: tuple[int, int], options: GtOptions = GtOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of one Velodyne scan, exactly as the reference export computes it, as
    the list of its non-zero pixels.

    Equals the reference's float64 map cast to float32 (as its export stores it): a negative
    depth is clamped and the depth cast before the minimum, which commutes with both (the
    cast is monotone).

    Args:
        points: (N, 4) float32 Velodyne points (x fwd, y left, z up in metres, reflectance).
        velo_to_image: (3, 4) float64 ``P_rect @ R_rect_00 @ velo_to_cam`` (1-based pixels).
        image_hw: (height, width) of the map (the reference: ``S_rect_02``).
    Returns:
        index: (K,) int64 ascending linear pixel indices ``v * W + u``;
        depth: (K,) float32 metres, all > 0.
    """
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"points must be (N, 4), got {points.shape}")
    h, w = image_hw
    xyz1 = np.compress(points[:, 0] >= 0, points, axis=0).astype(np.float64)
    xyz1[:, 3] = 1.0
    p = np.dot(velo_to_image, xyz1.T)  # (3, M): the reference's product, bit for bit
    with np.errstate(divide="ignore", invalid="ignore"):  # in place: fresh large arrays cost page faults
        np.divide(p[:2], p[2], out=p[:2])
    inside = _rounds_into(p[0], w)
    inside &= _rounds_into(p[1], h)
    keep = np.flatnonzero(inside)
    # the depth first, then the big arrays go as soon as they are dead: the small ones that
    # follow reuse their memory instead of mapping fresh pages
    z = xyz1[keep, 0] if options.depth == DepthSource.VELODYNE else np.maximum(p[2].take(keep), 0.0)
    z = z.astype(np.float32)
    del xyz1, inside
    uv = p[:2].take(keep, axis=1)
    del p
    np.rint(uv, out=uv)  # np.round: half to even; 1-based pixel
    pixel = uv[1]
    pixel *= w
    pixel += uv[0]
    pixel -= w + 1  # round() - 1 on both axes; exact: integers far below 2**53
    index, values = _resolve_pixels(pixel.astype(np.int64), z, w, options.duplicates)
    positive = values > 0
    if positive.all():
        return index, values
    return index[positive], values[positive]


def lidar_depth_map(
    points: np.ndarray, velo_to_image: np.ndarray, image_hw: tuple[int, int], options: GtOptions = GtOptions()
) -> np.ndarray:
    """:func:`lidar_depth_pixels` as a dense (H, W) float32 map in metres (0 = no point)."""
    index, values = lidar_depth_pixels(points, velo_to_image, image_hw, options)
    return densify(index, values, image_hw)


def densify(index: np.ndarray, values: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 map with ``values`` at the linear pixel ``index``, 0 elsewhere."""
    out = np.zeros(image_hw[0] * image_hw[1], np.float32)
    out[index] = values
    return out.reshape(image_hw)


def velodyne_gt(
    velo_path: str | Path, rig: KittiRig, options: GtOptions = GtOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth pixels of one frame from its Velodyne file, at the size of ``S_rect_02``
    (see :func:`lidar_depth_pixels`)."""
    return lidar_depth_pixels(
        read_velodyne(velo_path), rig.velo_to_image(options.cam), rig.image_size[2], options
    )


def groundtruth_png_path(drive_path: Path, frame: int, cam: int = 2) -> Path:
    """``<drive>/proj_depth/groundtruth/image_0{cam}/<frame:010d>.png`` (KITTI depth annotations)."""
    return drive_path / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{frame:010d}.png"


def png_depth_map(path: str | Path) -> np.ndarray:
    """Annotated depth map (eigen_benchmark): (H, W) float32 metres = uint16 / 256, 0 = none."""
    path = Path(path)
    png = read_image(
        path,
        cv2.IMREAD_UNCHANGED,
        fix="eigen_benchmark needs KITTI's annotated depth maps (data_depth_annotated) merged into "
        "the raw tree as <drive>/proj_depth/groundtruth/image_02/",
    )
    if png.dtype != np.uint16 or png.ndim != 2:
        raise InputDataError(
            path,
            f"expected a single-channel uint16 PNG, got {png.dtype} {png.shape}",
            "use the annotated depth maps exactly as KITTI ships them",
        )
    return png.astype(np.float32) / PNG_DEPTH_SCALE
