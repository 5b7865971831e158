"""sfm_data.npz: writing, reading, and the sparse supervision built from it.

The training loaders of the endoscopy branch call ``sparse_depth``, ``sparse_flow`` and
``relative_motion`` per frame pair, as the reference's SfMDataset.__getitem__ does
(seed_methods §1.4, §1.6). All pixel quantities are in the downsampled, cropped network
input (``input_size``), with the intrinsics ``K``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from workflow_scripts.endo.scene import SfMScene
from workflow_scripts.endo.sfm_data import SfMDataOptions, prepare, project_points
from workflow_scripts.util import InputDataError, atomic_file, write_text_atomic

__all__ = [
    "SFM_DATA_KEYS",
    "load_sfm_data",
    "rasterise_sparse_depth",
    "rasterise_sparse_flow",
    "relative_motion",
    "save_sfm_data",
    "sparse_depth",
    "sparse_flow",
    "write_sfm_data",
]

# Key -> meaning (shapes: V registered views, P points, M sparse samples).
SFM_DATA_KEYS = {
    "K": "(3, 3) intrinsics of the network input (downsampled, cropped), pixels, OpenCV convention",
    "K_full": "(3, 3) intrinsics of the full-resolution undistorted frames",
    "crop": "(4,) start_h, end_h, start_w, end_w in the downsampled frame",
    "downsampling": "() frames are resized by 1 / downsampling before the crop",
    "network_downsampling": "() crop sides are multiples of this",
    "image_size": "(2,) height, width of the full-resolution frames",
    "input_size": "(2,) height, width of the network input (= mask.shape)",
    "mask": "(h, w) uint8 cropped, eroded field-of-view mask (255 = valid; reference: > 0.9 * 255)",
    "frame_indexes": "(F,) all frame indexes of the clip (selected_indexes)",
    "view_indexes": "(V,) registered frame indexes, ascending; row v of per-view arrays",
    "cam_from_world": "(V, 4, 4) world -> camera poses, SfM units (COLMAP convention)",
    "points": "(P, 3) sparse points, world, SfM units",
    "visibility": "(P, V) uint8 1 = point triangulated from view (before the overlap window)",
    "visibility_overlap": "() overlap window used for the sparse samples",
    "clean": "(P,) bool, point kept by the brightness x depth^2 outlier test",
    "global_scale": "() SfM-unit extent; sparse depths and pair translations are divided by it",
    "sparse_view": "(M,) int32 view row of each sparse sample",
    "sparse_point": "(M,) int32 point of each sample (visible in the window, clean, in the mask)",
    "sparse_xy": "(M, 2) int32 rounded pixel (x, y) of the sample; one sample per pixel and view",
    "sparse_z": "(M,) float32 camera z of the sample, SfM units (divide by global_scale)",
}


def save_sfm_data(
    arrays: dict, npz_path: str | Path, json_path: str | Path, extra: dict | None = None
) -> dict:
    """Write the arrays (npz, compressed) and a JSON summary, each atomically; returns the summary."""
    missing = set(SFM_DATA_KEYS) - set(arrays)
    if missing:
        raise ValueError(f"sfm_data arrays miss {sorted(missing)}")
    with atomic_file(npz_path) as tmp:
        np.savez_compressed(tmp, **{k: np.asarray(arrays[k]) for k in SFM_DATA_KEYS})
    K = arrays["K"]
    n_views = len(arrays["view_indexes"])
    summary = {
        "views": n_views,
        "frames": int(len(arrays["frame_indexes"])),
        "points": int(len(arrays["points"])),
        "clean_points": int(np.sum(arrays["clean"])),
        "removed_points": np.flatnonzero(~np.asarray(arrays["clean"], bool)).tolist(),
        "sparse_points_per_view": float(len(arrays["sparse_view"]) / max(n_views, 1)),
        "crop": [int(c) for c in arrays["crop"]],
        "input_size": [int(s) for s in arrays["input_size"]],
        "K": {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])},
        "global_scale": float(arrays["global_scale"]),
        "mask_valid_fraction": float(np.mean(arrays["mask"] == 255)),
        "pose_convention": "cam_from_world (world -> camera); the reference's motion.yaml is its inverse",
        "keys": SFM_DATA_KEYS,
        **(extra or {}),
    }
    write_text_atomic(json_path, json.dumps(summary, indent=2) + "\n")
    return summary


def load_sfm_data(npz_path: str | Path) -> dict[str, np.ndarray]:
    """Read sfm_data.npz (no pickle) and check that every key is there."""
    path = Path(npz_path)
    if not path.is_file():
        raise InputDataError(path, "missing", "run prepare_sfm_data for this sequence")
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    missing = set(SFM_DATA_KEYS) - set(data)
    if missing:
        raise InputDataError(path, f"lacks {sorted(missing)}", "re-run prepare_sfm_data (older format)")
    return data


def _samples(data: dict, view: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sel = data["sparse_view"] == view
    return data["sparse_point"][sel], data["sparse_xy"][sel], data["sparse_z"][sel]


def sparse_depth(data: dict, view: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse depth of view row ``view``: depth (h, w) float32 = z / global_scale at the
    sample pixels, 0 elsewhere, and the mask (h, w) float32 (1 at samples)."""
    _, xy, z = _samples(data, view)
    return rasterise_sparse_depth(xy, z, _hw(data), float(data["global_scale"]))


def sparse_flow(data: dict, view_a: int, view_b: int, max_abs: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Sparse flow from view row ``view_a`` to ``view_b`` at the samples of ``view_a``.

    flow = (round(projection in b) - pixel in a) / (w, h) (normalised, reference rule);
    samples whose |flow| exceeds ``max_abs`` in either component get flow 0 and mask 0.

    Returns:
        flow (h, w, 2) float32 and mask (h, w) float32.
    """
    pid, xy, _ = _samples(data, view_a)
    return rasterise_sparse_flow(
        data["K"], data["cam_from_world"][view_b], data["points"][pid], xy, _hw(data), max_abs
    )


def _hw(data: dict) -> tuple[int, int]:
    h, w = (int(s) for s in data["input_size"])
    return h, w


def rasterise_sparse_depth(
    xy: np.ndarray, z: np.ndarray, hw: tuple[int, int], global_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (h, w) float32 = z / global_scale at the pixels ``xy`` ((K, 2) int x, y), 0
    elsewhere, and the mask (h, w) float32 (1 at the samples)."""
    depth = np.zeros(hw, np.float32)
    valid = np.zeros(hw, np.float32)
    depth[xy[:, 1], xy[:, 0]] = z / np.float32(global_scale)
    valid[xy[:, 1], xy[:, 0]] = 1.0
    return depth, valid


def rasterise_sparse_flow(
    K: np.ndarray,
    cam_b_from_world: np.ndarray,
    points: np.ndarray,
    xy: np.ndarray,
    hw: tuple[int, int],
    max_abs: float = 5.0,
    front_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised flow (h, w, 2) float32 of the samples at pixels ``xy`` ((K, 2) int) whose 3D
    points are ``points`` (K, 3) into camera b: ``(round(projection in b) - xy) / (w, h)``,
    and the mask (h, w) float32: 0 where a component exceeds ``max_abs`` (and, with
    ``front_only``, where the point is not in front of camera b)."""
    h, w = hw
    uv_b, z_b = project_points(K, cam_b_from_world, points)
    with np.errstate(invalid="ignore"):
        f = (np.round(uv_b) - xy) / np.array([w, h], np.float64)
        bad = ~(np.abs(f) <= max_abs).all(axis=1)
        if front_only:
            bad |= ~(z_b > 0)
    f[bad] = 0.0
    flow = np.zeros((h, w, 2), np.float32)
    valid = np.zeros((h, w), np.float32)
    flow[xy[:, 1], xy[:, 0]] = f
    valid[xy[:, 1], xy[:, 0]] = (~bad).astype(np.float32)
    return flow, valid


def relative_motion(data: dict, view_a: int, view_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Pose of camera b in camera a's frame: ``a_from_b`` (4, 4) with the translation
    divided by global_scale, and its inverse ``b_from_a``. In the reference's names:
    R_1wrt2 = a_from_b[:3, :3], t_1wrt2 = a_from_b[:3, 3] (1 = a, 2 = b)."""
    T = data["cam_from_world"]
    a_from_b = T[view_a] @ np.linalg.inv(T[view_b])
    a_from_b[:3, 3] /= float(data["global_scale"])
    return a_from_b, np.linalg.inv(a_from_b)


def write_sfm_data(
    scene: SfMScene,
    options: SfMDataOptions,
    npz_path: str | Path,
    json_path: str | Path,
    extra: dict | None = None,
) -> dict:
    """prepare_sfm_data on an ``SfMScene`` with ``SfMDataOptions``: preprocess, then save."""
    arrays = prepare(scene, options)
    info = {"frames_dir": str(scene.frames_dir), "options": {k: v for k, v in vars(options).items()}}
    return save_sfm_data(arrays, npz_path, json_path, {**info, **(extra or {})})
