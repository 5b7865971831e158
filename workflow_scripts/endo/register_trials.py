"""Random similarity trials of the CT registration (bench/endo_register.py and the tests).

A trial cuts a partial cloud out of the CT surface the way an endoscope sees a tube-like
cavity: a segment of the cavity around a point near its axis (the whole circumference over a
length of about 2 sqrt(R^2 - r^2)), optionally with part of the circumference removed (a
camera close to one wall). It adds Gaussian noise (mm), moves the cloud by a random similarity
(scale, rotation about a random axis, translation) and registers it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.register import CTSurface, RegisterOptions, register_similarity

__all__ = ["TrialOptions", "oracle_depth", "partial_cloud", "run_trial"]


@dataclass(frozen=True)
class TrialOptions:
    """Ranges of a trial (mm, degrees)."""

    noise_mm: float = 0.1
    scale: tuple[float, float] = (0.5, 2.0)
    max_rotation_deg: float = 30.0
    translation_mm: float = 200.0
    radius_mm: tuple[float, float] = (15.0, 25.0)
    keep_circumference: tuple[float, float] = (0.6, 1.0)
    points: int = 5000
    tolerance_mm: float = 0.1


def partial_cloud(dense: np.ndarray, rng: np.random.Generator, opts: TrialOptions) -> np.ndarray:
    """A cavity segment from a dense surface sample (N, 3) mm: the points within a random
    radius of the centroid of the surface near a random point (a point near the axis), then
    only a random fraction of the directions about that centre (the camera's side)."""
    p = dense[rng.integers(len(dense))]
    near = dense[np.linalg.norm(dense - p, axis=1) < 10.0]
    centre = near.mean(0)
    part = dense[np.linalg.norm(dense - centre, axis=1) < rng.uniform(*opts.radius_mm)]
    keep = rng.uniform(*opts.keep_circumference)
    if keep < 1.0:
        d = part - centre
        side = rng.normal(size=3)
        cos = d @ side / (np.linalg.norm(d, axis=1) * np.linalg.norm(side) + 1e-12)
        part = part[cos >= np.quantile(cos, 1.0 - keep)]
    return part[rng.choice(len(part), min(len(part), opts.points), replace=False)]


def run_trial(
    ct: CTSurface,
    dense: np.ndarray,
    rng: np.random.Generator,
    opts: TrialOptions | None = None,
    reg: RegisterOptions | None = None,
) -> dict:
    """One trial; returns the residual RMS (mm), success (RMS <= noise + tolerance), the pose
    error (RMS distance of the noise-free points under the true and the recovered transform,
    mm), the scale ratio (recovered / true, 1 = exact) and the seconds of the registration."""
    opts, reg = opts or TrialOptions(), reg or RegisterOptions()
    clean = partial_cloud(dense, rng, opts)
    noisy = clean + rng.normal(0.0, opts.noise_mm, clean.shape)
    s = float(np.exp(rng.uniform(*np.log(opts.scale))))
    axis = rng.normal(size=3)
    angle = np.deg2rad(rng.uniform(0.0, opts.max_rotation_deg))
    R = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
    t = rng.uniform(-opts.translation_mm, opts.translation_mm, 3)
    source = s * noisy @ R.T + t
    start = time.perf_counter()
    out = register_similarity(source, ct, reg)
    seconds = time.perf_counter() - start
    T = out["ct_from_cloud"]
    moved = (s * clean @ R.T + t) @ T[:3, :3].T + T[:3, 3]
    rms = out["stats"]["rms_mm"]
    return {
        "rms_mm": rms,
        "success": bool(rms <= opts.noise_mm + opts.tolerance_mm),
        "pose_error_mm": float(np.sqrt(np.mean(np.sum((moved - clean) ** 2, axis=1)))),
        "scale_ratio": out["scale"] * s,
        "points": len(source),
        "hypotheses": out["hypotheses"],
        "seconds": seconds,
    }


def oracle_depth(sfm: dict, ct: CTSurface, ct_from_sfm: np.ndarray):
    """Test/bench only (never in the workflow): depth maps of the CT surface seen by the SfM
    views, in SfM units, through a known SfM -> CT similarity (e.g. Umeyama of the camera
    centres against the demo's true ones). Returns a ``PredictedDepth`` of every view."""
    import open3d as o3d

    from workflow_scripts.endo.pointcloud import PredictedDepth

    h, w = (int(s) for s in sfm["input_size"])
    v, u = np.mgrid[0:h, 0:w]
    rays_cam = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(sfm["K"]).T  # z = 1
    s = float(np.cbrt(np.linalg.det(ct_from_sfm[:3, :3])))
    R = ct_from_sfm[:3, :3] / s
    depth = np.zeros((len(sfm["view_indexes"]), h, w), np.float32)
    for i, cam_from_world in enumerate(sfm["cam_from_world"]):
        world_from_cam = np.linalg.inv(cam_from_world)
        origin = ct_from_sfm[:3, :3] @ world_from_cam[:3, 3] + ct_from_sfm[:3, 3]
        dirs = rays_cam @ (R @ world_from_cam[:3, :3]).T
        rays = np.concatenate([np.broadcast_to(origin, dirs.shape), dirs], 1).astype(np.float32)
        hit = ct.scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().reshape(h, w)
        depth[i] = np.where(np.isfinite(hit), hit / s, 0.0)
    return PredictedDepth(depth=depth, frame_indexes=np.asarray(sfm["view_indexes"], np.int64),
                          K=np.asarray(sfm["K"], np.float64), mask=(sfm["mask"] == 255).astype(np.uint8))
