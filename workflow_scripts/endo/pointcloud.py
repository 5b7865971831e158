"""Point clouds from predicted depth: back-projection, fusion with the SfM poses, PLY files.

Conventions (DESIGN.md §4): ``K`` in pixels of the depth map, pixel (u, v) = (column, row) with
the OpenCV convention (pixel centres at integers, as ``K`` of sfm_data), ``cam_from_world``
world -> camera. The reference writes one PLY per frame with ``z = D(v, u)``,
``x = (u - cx) / fx * z``, ``y = (v - cy) / fy * z`` (ENDO:utils.py:point_cloud_from_depth,
seed_methods §7.5); we do the same and add the fused cloud of the sequence in SfM world units.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from workflow_scripts.util import InputDataError, atomic_file
from workflow_scripts.util.options import option
from workflow_scripts.util.ply import write_ply

__all__ = [
    "PointCloudOptions",
    "PredictedDepth",
    "backproject",
    "export_clouds",
    "frame_sparse_samples",
    "load_predicted_depth",
    "save_predicted_depth",
    "sfm_median_scale",
    "voxel_downsample",
]


@dataclass(frozen=True, kw_only=True)
class PointCloudOptions:
    """export_point_clouds -> results/endo/pointclouds/<stage>/<seq>/: frames/<index:08d>.ply (camera
    frame: x right, y down, z forward; SfM units), fused.ply (all frames with an SfM pose, SfM world
    frame and units), summary.json. Binary PLY, x y z + red green blue."""

    frame_plys: bool = option(
        True, "Write the per-frame PLYs (about 0.5 MB each at 192x256); false = only the fused cloud."
    )
    pixel_stride: int = option(
        2, "The fused cloud uses every pixel_stride-th row and column of each frame.", minimum=1
    )
    voxel: float = option(
        0.005,
        "Then a voxel grid of this size, as a fraction of the median predicted depth (0 = off).",
        minimum=0,
    )
    frame_scaling: Literal["none", "sfm_median"] = option(
        "none",
        "none = fuse the depth as predicted (SfM units, the prediction interface); sfm_median = first "
        "rescale each frame by median(SfM sparse z / predicted depth) (per-frame scale drift).",
    )


@dataclass
class PredictedDepth:
    """Contents of results/endo/pred/<stage>/<seq>/depth.npz.

    Attributes:
        depth: (N, H, W) float32, camera z in SfM world units of the sequence.
        frame_indexes: (N,) int64 original frame numbers.
        K: (3, 3) float64 intrinsics of the depth maps (pixels).
        mask: (H, W) uint8, 1 = valid pixel.
    """

    depth: np.ndarray
    frame_indexes: np.ndarray
    K: np.ndarray
    mask: np.ndarray


def save_predicted_depth(path: str | Path, pred: PredictedDepth) -> None:
    """Write depth.npz atomically (compressed)."""
    with atomic_file(path) as tmp:
        np.savez_compressed(
            tmp,
            depth=np.asarray(pred.depth, np.float32),
            frame_indexes=np.asarray(pred.frame_indexes, np.int64),
            K=np.asarray(pred.K, np.float64),
            mask=np.asarray(pred.mask, np.uint8),
        )


def load_predicted_depth(path: str | Path) -> PredictedDepth:
    """Read and check a depth.npz (keys depth, frame_indexes, K, mask; no pickle)."""
    path = Path(path)
    fix = "re-run the prediction rule of this stage (results/endo/pred/<stage>/<seq>/depth.npz)"
    if not path.is_file():
        raise InputDataError(path, "missing", fix)
    with np.load(path, allow_pickle=False) as f:
        missing = {"depth", "frame_indexes", "K", "mask"} - set(f.files)
        if missing:
            raise InputDataError(path, f"lacks the keys {sorted(missing)}", fix)
        pred = PredictedDepth(
            depth=np.asarray(f["depth"], np.float32),
            frame_indexes=np.asarray(f["frame_indexes"], np.int64),
            K=np.asarray(f["K"], np.float64),
            mask=np.asarray(f["mask"], np.uint8),
        )
    if pred.depth.ndim != 3 or len(pred.frame_indexes) != len(pred.depth):
        raise InputDataError(
            path, f"depth {pred.depth.shape} and frame_indexes {pred.frame_indexes.shape} disagree", fix
        )
    if pred.mask.shape != pred.depth.shape[1:] or pred.K.shape != (3, 3):
        raise InputDataError(path, f"mask {pred.mask.shape} / K {pred.K.shape} do not fit the depth", fix)
    return pred


def backproject(
    depth: np.ndarray, K: np.ndarray, valid: np.ndarray, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points of the valid pixels of a depth map.

    Args:
        depth: (H, W) camera z (any unit; the points have the same unit).
        K: (3, 3) intrinsics in pixels of ``depth``.
        valid: (H, W) bool; pixels with depth <= 0 or non-finite are dropped as well.
        stride: keep rows and columns 0, stride, 2 stride, ...
    Returns:
        points (M, 3) float64 in the camera frame, pixels (M, 2) int64 (u = column, v = row),
        in row-major order.
    """
    if depth.ndim != 2 or valid.shape != depth.shape:
        raise ValueError(f"depth {depth.shape} and valid {valid.shape} must be the same (H, W)")
    keep = valid & np.isfinite(depth) & (depth > 0)
    if stride > 1:
        sub = np.zeros_like(keep)
        sub[::stride, ::stride] = True
        keep &= sub
    v, u = np.nonzero(keep)
    z = depth[v, u].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], 1), np.stack([u, v], 1).astype(np.int64)


def voxel_downsample(
    points: np.ndarray, colors: np.ndarray | None, voxel: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Open3D voxel grid (mean of the points and colours in each voxel). points (N, 3),
    colors (N, 3) uint8 or None; voxel in the points' unit (<= 0 = unchanged)."""
    if voxel <= 0 or len(points) == 0:
        return points, colors
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    if colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64) / 255.0)
    down = pcd.voxel_down_sample(float(voxel))
    out_colors = None
    if colors is not None:
        out_colors = np.clip(np.round(np.asarray(down.colors) * 255.0), 0, 255).astype(np.uint8)
    return np.asarray(down.points), out_colors


def frame_sparse_samples(sfm: dict, view: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """SfM sparse samples of view row ``view`` mapped to a depth map of ``shape`` (H, W):
    pixels (M, 2) int64 (u, v) and camera z (M,) float64 in SfM units. The samples live in
    sfm_data's ``input_size``; another size maps them by the ratio of the sizes (nearest)."""
    sel = sfm["sparse_view"] == view
    xy = sfm["sparse_xy"][sel].astype(np.float64)
    h, w = (int(s) for s in sfm["input_size"])
    H, W = shape
    if (H, W) != (h, w):
        xy = np.floor((xy + 0.5) * np.array([W / w, H / h]))
    return xy.astype(np.int64), sfm["sparse_z"][sel].astype(np.float64)


def sfm_median_scale(depth: np.ndarray, sfm: dict, view: int) -> float:
    """median(SfM z / predicted depth) over the frame's sparse samples (1.0 without samples)."""
    xy, z = frame_sparse_samples(sfm, view, depth.shape)
    d = depth[xy[:, 1], xy[:, 0]].astype(np.float64) if len(z) else np.zeros(0)
    ok = np.isfinite(d) & (d > 0)
    return float(np.median(z[ok] / d[ok])) if ok.any() else 1.0


def _network_colours(path: Path, sfm: dict, crop: tuple[int, ...], hw: tuple[int, int]) -> np.ndarray:
    """A frame as the network saw it (sfm_data's downsampling and crop), resized to ``hw``: BGR uint8."""
    import cv2

    from workflow_scripts.endo.sfm_data import load_network_image

    bgr = load_network_image(path, float(sfm["downsampling"]), crop)
    if bgr.shape[:2] != tuple(hw):
        bgr = cv2.resize(bgr, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return bgr


def export_clouds(
    pred: PredictedDepth,
    sfm: dict,
    frames_dir: str | Path,
    fused_path: str | Path,
    frames_out: str | Path | None,
    options: PointCloudOptions,
) -> dict:
    """Per-frame clouds (camera frame) and the fused cloud (SfM world frame) of one sequence.

    Args:
        pred: the stage's predicted depth (SfM units, see ``PredictedDepth``).
        sfm: sfm_data arrays (``workflow_scripts.endo.sparse.load_sfm_data``).
        frames_dir: extract_frames' folder; colours are the network input (same crop and
            downsampling as sfm_data), resized to the depth maps when their size differs.
        fused_path: PLY of all frames with an SfM pose, in SfM world units.
        frames_out: folder for ``<index:08d>.ply`` (camera frame, SfM units); None = none.
    Returns:
        summary: frames used, frames without a pose, point counts, median depth, scales.
    """
    view_of = {int(f): v for v, f in enumerate(sfm["view_indexes"])}
    H, W = pred.depth.shape[1:]
    valid = pred.mask > 0
    crop = tuple(int(c) for c in sfm["crop"])
    fused_pts, fused_rgb, used, no_pose, scales = [], [], [], [], []
    median_depth = float(np.median(pred.depth[:, valid])) if valid.any() else 0.0
    for n, frame in enumerate(pred.frame_indexes):
        view = view_of.get(int(frame))
        bgr = _network_colours(Path(frames_dir) / f"{int(frame):08d}.jpg", sfm, crop, (H, W))
        depth = pred.depth[n].astype(np.float64)
        if options.frame_scaling == "sfm_median" and view is not None:
            scales.append(sfm_median_scale(depth, sfm, view))
            depth = depth * scales[-1]
        if frames_out is not None:
            pts, px = backproject(depth, pred.K, valid)
            write_ply(
                Path(frames_out) / f"{int(frame):08d}.ply",
                pts,
                bgr[px[:, 1], px[:, 0], ::-1],
                [f"frame {int(frame)}", "camera frame (x right, y down, z forward), SfM units"],
            )
        if view is None:
            no_pose.append(int(frame))
            continue
        pts, px = backproject(depth, pred.K, valid, options.pixel_stride)
        world_from_cam = np.linalg.inv(sfm["cam_from_world"][view])
        fused_pts.append(pts @ world_from_cam[:3, :3].T + world_from_cam[:3, 3])
        fused_rgb.append(bgr[px[:, 1], px[:, 0], ::-1])
        used.append(int(frame))
    if not used:
        raise InputDataError(
            fused_path,
            "no predicted frame has an SfM pose",
            "check that the prediction covers the sequence's views",
        )
    points, colors = np.concatenate(fused_pts), np.concatenate(fused_rgb)
    n_before = len(points)
    points, colors = voxel_downsample(points, colors, options.voxel * median_depth)
    write_ply(
        fused_path, points, colors, ["fused cloud of the predicted depth", "SfM world frame, SfM units"]
    )
    return {
        "frames": used,
        "frames_without_pose": no_pose,
        "points_before_voxel": int(n_before),
        "points": int(len(points)),
        "median_depth_sfm_units": median_depth,
        "voxel_sfm_units": options.voxel * median_depth,
        "frame_scales": scales,
        "options": vars(options),
    }
