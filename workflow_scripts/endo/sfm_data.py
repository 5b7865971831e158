"""Stage prepare_sfm_data: the endoscopy reference's per-sequence preprocessing.

Restates ENDO:dataset.py:pre_processing_data and its helpers in utils.py (seed_methods
§1.4-1.6): downsample + crop of the mask to a network-divisible size, adjusted K,
visibility smoothing with an overlap window, global scale, SfM outlier cleaning with the
brightness x depth^2 histogram, and the per-frame sparse points (pixel, depth) from which
sparse depth and sparse flow are built (see ``workflow_scripts.endo.sparse``).

Fidelity notes (decisions, also in the README text of the endoscopy branch):
- K' = K / d with the principal point shifted by the crop and NO half-pixel correction,
  as the reference (0.5 (1 - 1/d) px off the exact resize geometry; golden values need it).
- When the network-divisible crop would reach past the downsampled image (the reference
  then silently yields a smaller array), we shrink it by whole divisors instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.endo.scene import SfMScene
from workflow_scripts.util import InputDataError
from workflow_scripts.util.images import read_image
from workflow_scripts.util.options import option

__all__ = [
    "SfMDataOptions",
    "clean_point_mask",
    "crop_intrinsics",
    "downsample_and_crop_mask",
    "frame_sparse_points",
    "global_scale",
    "load_network_image",
    "prepare",
    "project_points",
    "sanity_thresholds",
    "smooth_visibility",
]
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SfMDataOptions:
    """prepare_sfm_data -> results/endo/<seq>/sfm_data.npz (+ .json): the reference's training
    supervision (crop, K, scale, clean points, visibility, sparse depth/flow samples). Defaults:
    the reference's (1920x1080 frames -> 256x320 network images)."""

    downsampling: float = option(
        4.0, "Frames are resized by 1 / downsampling, then cropped around the mask.", minimum=1
    )
    network_downsampling: int = option(64, "Crop height and width are multiples of this.", minimum=1)
    inlier_percentage: float = option(
        0.99,
        "Fraction of the brightness x depth^2 histogram kept per frame by the "
        "outlier cleaning (<= 0 or >= 1 = no cleaning).",
    )
    visibility_overlap: int = option(
        30, "A point seen in a view counts as visible in the views within this window.", minimum=1
    )
    crop_size: tuple[int, ...] = option(
        (),
        "[height, width] forced on every sequence (the reference gives all "
        "sequences the largest size); [] = each sequence's own size from its mask.",
        maxItems=2,
        **{"not": {"minItems": 1, "maxItems": 1}},
    )


def _axis_crop(lo: int, hi: int, full: int, divide: int, suggested: int | None) -> tuple[int, int]:
    """[start, end) along one axis for a mask spanning rows/cols lo..hi (reference rule)."""
    extent = hi - lo  # the reference uses max - min, not + 1
    inc = divide - extent % divide
    target = extent + inc
    start = max(lo - inc // 2, 0)
    end = start + target
    if suggested is not None:
        if suggested > full:
            raise ValueError(f"crop size {suggested} exceeds the downsampled image ({full})")
        if suggested != extent:  # the reference compares with the extent, not the target
            start = max(start - (suggested - target) // 2, 0)
            end = min(suggested + start, full)
            start = end - suggested
    elif end > full:  # deviation: keep the crop inside the image (shifted; shrunk if too large)
        if target > full:
            target = (full // divide) * divide
            if target == 0:
                raise ValueError(f"downsampled image ({full}) is smaller than network_downsampling {divide}")
        start = min(max((lo + hi) // 2 - target // 2, 0), full - target)
        end = start + target
    return int(start), int(end)


def downsample_and_crop_mask(
    mask: np.ndarray, downsampling: float, divide: int, suggested_hw: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize the FOV mask by 1/downsampling (bilinear), crop to a size divisible by
    ``divide`` around the region == 255, erode (5x5 ones, once).

    Args:
        mask: (H, W) uint8, 255 = valid.
    Returns:
        cropped eroded mask (h, w) uint8, and the crop (start_h, end_h, start_w, end_w) in the
        downsampled image.
    """
    small = cv2.resize(mask, (0, 0), fx=1.0 / downsampling, fy=1.0 / downsampling)
    rows, cols = np.nonzero(small == 255)
    if rows.size == 0:
        raise ValueError("mask has no pixel == 255 after downsampling")
    sh, sw = suggested_hw if suggested_hw is not None else (None, None)
    start_h, end_h = _axis_crop(int(rows.min()), int(rows.max()), small.shape[0], divide, sh)
    start_w, end_w = _axis_crop(int(cols.min()), int(cols.max()), small.shape[1], divide, sw)
    eroded = cv2.erode(small, np.ones((5, 5), np.uint8), iterations=1)
    return eroded[start_h:end_h, start_w:end_w], (start_h, end_h, start_w, end_w)


def crop_intrinsics(K: np.ndarray, downsampling: float, crop: tuple[int, int, int, int]) -> np.ndarray:
    """K of the downsampled, cropped image: f / d, c / d - crop start (reference rule)."""
    out = np.array(K, np.float64, copy=True)
    out[:2, :3] /= downsampling
    out[0, 2] -= crop[2]
    out[1, 2] -= crop[0]
    return out


def load_network_image(path: str | Path, downsampling: float, crop: tuple[int, int, int, int]) -> np.ndarray:
    """Frame as the reference feeds it: imread (BGR) -> resize 1/d (bilinear) -> crop. (h, w, 3) uint8."""
    image = read_image(path, fix="re-run extract_frames for this sequence")
    small = cv2.resize(image, (0, 0), fx=1.0 / downsampling, fy=1.0 / downsampling)
    return small[crop[0] : crop[1], crop[2] : crop[3]]


def smooth_visibility(visibility: np.ndarray, overlap: int) -> np.ndarray:
    """V'[:, i] = sum of V[:, j] for j in [max(0, i - overlap), min(V, i + overlap)).

    Args:
        visibility: (P, V) 0/1. Returns (P, V) int32 counts (> 0.5 = visible).
    """
    P, V = visibility.shape
    c = np.zeros((P, V + 1), np.int64)
    np.cumsum(visibility, axis=1, out=c[:, 1:])
    i = np.arange(V)
    lo, hi = np.maximum(0, i - overlap), np.minimum(V, i + overlap)
    return (c[:, hi] - c[:, lo]).astype(np.int32)


def global_scale(cam_from_world: np.ndarray, points: np.ndarray) -> float:
    """max(1, |extent of the world->camera translations|, |extent of the points|) (reference:
    it uses the t column of cam_from_world, not the camera centres; points in float32, NaN skipped)."""
    t = np.asarray(cam_from_world)[:, :3, 3]
    norm_t = float(np.linalg.norm(t.max(0) - t.min(0)))
    pts = np.asarray(points, np.float32)
    pts = pts[~np.isnan(pts).any(axis=1)]
    norm_p = float(np.linalg.norm(pts.max(0) - pts.min(0))) if len(pts) else 0.0
    return max(1.0, norm_t, norm_p)


def project_points(
    K: np.ndarray, cam_from_world: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (P, 2) (not rounded) and camera z (P,) of world points (P, 3)."""
    Xc = points @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    p = Xc @ K[:3, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = p[:, :2] / p[:, 2:3]
    return uv, Xc[:, 2]


def sanity_thresholds(sanity: np.ndarray, inlier_percentage: float) -> tuple[float, float]:
    """Interval of the brightness x depth^2 histogram holding ``inlier_percentage`` of the
    mass, grown from the peak bin alternately right then left (ENDO compute_sanity_threshold:
    999 bins on [0, 0.999 max])."""
    hist, edges = np.histogram(sanity, bins=np.arange(1000) * np.max(sanity) / 1000.0, density=True)
    p = hist * np.diff(edges)
    peak = int(np.argmax(p))
    total, pos, neg = p[peak], 1, 1
    while True:
        if peak + pos < len(p):
            total += p[peak + pos]
            pos += 1
            if total >= inlier_percentage:
                return float(edges[peak - neg + 1]), float(edges[peak + pos])
        if peak - neg >= 0:
            total += p[peak - neg]
            neg += 1
            if total >= inlier_percentage:
                return float(edges[peak - neg + 1]), float(edges[peak + pos])
        if peak + pos >= len(p) and peak - neg < 0:
            return float(edges.min()), float(edges.max())


def _brightness(image_bgr: np.ndarray) -> np.ndarray:
    """V of HSV_FULL after the reference's bilateral filter on the [0, 1] float image. (h, w)."""
    img = image_bgr.astype(np.float32) / 255.0
    filtered = cv2.bilateralFilter(src=img, d=7, sigmaColor=25, sigmaSpace=25)
    return cv2.cvtColor(filtered, cv2.COLOR_BGR2HSV_FULL)[..., 2]


def clean_point_mask(
    images: list[np.ndarray],
    points: np.ndarray,
    visible: np.ndarray,
    mask: np.ndarray,
    K: np.ndarray,
    cam_from_world: np.ndarray,
    inlier_percentage: float,
) -> np.ndarray:
    """SfM outlier rejection by the lighting model (brightness ~ 1 / depth^2), seed_methods §1.5.5.

    Args:
        images: V cropped, downsampled BGR uint8 frames (h, w, 3), one per view.
        points: (P, 3) world points; visible: (P, V) bool (smoothed visibility > 0.5).
        mask: (h, w) cropped eroded mask; K: cropped intrinsics; cam_from_world: (V, 4, 4).
    Returns:
        (P,) bool, True = clean (contaminated in fewer than half of its in-mask appearances).
    """
    P = len(points)
    if inlier_percentage <= 0.0 or inlier_percentage >= 1.0:
        return np.ones(P, bool)
    h, w = mask.shape
    contamination = np.zeros(P, np.int32)
    appearance = np.zeros(P, np.int32)
    for v, image in enumerate(images):
        idx = np.flatnonzero(visible[:, v])
        uv, z = project_points(K, cam_from_world[v], points[idx])
        inside = (uv[:, 0] <= w - 1) & (uv[:, 0] >= 0) & (uv[:, 1] <= h - 1) & (uv[:, 1] >= 0) & (z > 0)
        idx, uv, z = idx[inside], uv[inside], z[inside]
        x, y = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
        in_mask = mask[y, x] == 255
        idx, x, y, z = idx[in_mask], x[in_mask], y[in_mask], z[in_mask]
        sanity = z**2 * _brightness(image)[y, x]
        appearance[idx] += 1
        if sanity.size < 2 or not np.max(sanity) > 0:
            continue
        lo, hi = sanity_thresholds(sanity, inlier_percentage)
        contamination[idx[(sanity <= lo) | (sanity >= hi)]] += 1
    return contamination < appearance / 2


def frame_sparse_points(
    K: np.ndarray, cam_from_world: np.ndarray, points: np.ndarray, usable: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sparse points of one frame, as the reference's training loader selects them:
    usable (visible and clean), rounded pixel inside the image, z > 0, mask == 255 there;
    when several points round to one pixel the last in point order wins (no z-buffer).

    Returns:
        point ids (M,), pixels (M, 2) int32 (x, y), camera z (M,) float32 (SfM units).
    """
    h, w = mask.shape
    idx = np.flatnonzero(usable)
    uv, z = project_points(K, cam_from_world, points[idx])
    with np.errstate(invalid="ignore"):
        xy = np.round(uv)
        keep = (xy[:, 0] <= w - 1) & (xy[:, 0] >= 0) & (xy[:, 1] <= h - 1) & (xy[:, 1] >= 0) & (z > 0)
    idx, xy, z = idx[keep], xy[keep].astype(np.int32), z[keep]
    keep = mask[xy[:, 1], xy[:, 0]] == 255
    idx, xy, z = idx[keep], xy[keep], z[keep]
    flat = xy[:, 1] * w + xy[:, 0]
    _, last_rev = np.unique(flat[::-1], return_index=True)  # last occurrence per pixel
    last = np.sort(len(flat) - 1 - last_rev)
    return idx[last], xy[last], z[last].astype(np.float32)


def prepare(scene: SfMScene, options: SfMDataOptions) -> dict:
    """Run the whole preprocessing on ``scene``; returns the arrays of sfm_data.npz
    (documented in ``workflow_scripts.endo.sparse.SFM_DATA_KEYS``)."""
    try:
        mask, crop = downsample_and_crop_mask(
            scene.mask, options.downsampling, options.network_downsampling, options.crop_size or None
        )
    except ValueError as err:
        raise InputDataError(
            scene.frames_dir,
            f"cannot crop the field-of-view mask ({err})",
            "check the mask, endoscopy.sfm_data.downsampling / network_downsampling / crop_size",
        ) from err
    K = crop_intrinsics(scene.K, options.downsampling, crop)
    visible = smooth_visibility(scene.visibility, options.visibility_overlap) > 0.5
    scale = global_scale(scene.cam_from_world, scene.points)
    images = [load_network_image(scene.frame_path(i), options.downsampling, crop) for i in scene.view_indexes]
    clean = clean_point_mask(
        images, scene.points, visible, mask, K, scene.cam_from_world, options.inlier_percentage
    )
    views, pids, pixels, zs = [], [], [], []
    for v in range(len(scene.view_indexes)):
        p, xy, z = frame_sparse_points(K, scene.cam_from_world[v], scene.points, visible[:, v] & clean, mask)
        views.append(np.full(len(p), v, np.int32))
        pids.append(p.astype(np.int32))
        pixels.append(xy)
        zs.append(z)
    log.info(
        "crop %s -> %dx%d, K' f=%.4f c=(%.4f, %.4f), scale %.6g, %d/%d points clean, %.1f samples/frame",
        list(crop),
        mask.shape[0],
        mask.shape[1],
        K[0, 0],
        K[0, 2],
        K[1, 2],
        scale,
        int(clean.sum()),
        len(clean),
        sum(len(p) for p in pids) / max(len(pids), 1),
    )
    return {
        "K": K,
        "K_full": np.asarray(scene.K, np.float64),
        "crop": np.array(crop, np.int32),
        "downsampling": np.float64(options.downsampling),
        "network_downsampling": np.int32(options.network_downsampling),
        "image_size": np.array(scene.image_size, np.int32),
        "input_size": np.array(mask.shape, np.int32),
        "mask": mask,
        "frame_indexes": np.asarray(scene.frame_indexes, np.int64),
        "view_indexes": np.asarray(scene.view_indexes, np.int64),
        "cam_from_world": np.asarray(scene.cam_from_world, np.float64),
        "points": np.asarray(scene.points, np.float64),
        "visibility": np.asarray(scene.visibility, np.uint8),
        "visibility_overlap": np.int32(options.visibility_overlap),
        "clean": clean,
        "global_scale": np.float64(scale),
        "sparse_view": np.concatenate(views),
        "sparse_point": np.concatenate(pids),
        "sparse_xy": np.concatenate(pixels).reshape(-1, 2),
        "sparse_z": np.concatenate(zs),
    }
