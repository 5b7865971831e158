"""Random similarity trials of the CT registration (bench/endo_register.py and the tests).

Two kinds of trial:

- ``run_trial`` (tube-like demo cavity): a segment of the cavity around a point near its axis
  (the whole circumference over a length of about 2 sqrt(R^2 - r^2)), optionally with part of
  the circumference removed (a camera close to one wall), Gaussian noise (mm), a random
  similarity (scale, rotation up to ``max_rotation_deg`` about a random axis, translation).
- ``patch_trial`` (any anatomy, issue 15): the surface within a random radius of a random
  surface point, 2-10 k points, noise, 5 % outlier points, a random similarity with ANY
  rotation (uniform over SO(3)); scored by rotation, scale and centroid error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.register import (
    CTSurface,
    RegisterOptions,
    register_similarity,
    rotation_angle_deg,
    scale_of,
)

__all__ = [
    "PatchTrialOptions",
    "TrialOptions",
    "oracle_depth",
    "partial_cloud",
    "patch_cloud",
    "patch_trial",
    "pose_errors",
    "run_trial",
]


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


@dataclass(frozen=True)
class PatchTrialOptions:
    """Ranges of a real-anatomy trial (issue 15). Lengths in CT mm; ``radius`` as fractions of
    the CT's largest bounding-box side; ``noise_mm`` before scaling (so noise_mm x scale in the
    cloud's units); ``outliers``: fraction of the cloud's points drawn uniformly in the bounding
    box of the patch. Success: rotation, scale and centroid errors within the tolerances."""

    radius: tuple[float, float] = (0.2, 0.5)
    points: tuple[int, int] = (2000, 10000)
    scale: tuple[float, float] = (0.5, 2.0)
    translation_mm: float = 50.0
    noise_mm: float = 0.1
    outliers: float = 0.05
    max_rotation_deg: float = 180.0
    rotation_tol_deg: float = 2.0
    scale_tol: float = 0.02
    centroid_tol_mm: float = 1.0


def patch_cloud(
    dense: np.ndarray,
    extent_mm: float,
    rng: np.random.Generator,
    opts: PatchTrialOptions = PatchTrialOptions(),
) -> dict:
    """A random partial cloud of a surface sample ``dense`` (M, 3) mm moved by a random
    similarity. Returns {"cloud": (N, 3) cloud units, "clean": (K, 3) the noise-free surface
    points in mm (no outliers), "ct_from_cloud": the true (4, 4), "radius_mm": patch radius}.
    The scale s is log-uniform in opts.scale (cloud = s R x + t, so ct_from_cloud has 1 / s),
    R uniform over SO(3) (or about a random axis up to max_rotation_deg), |t| uniform up to
    opts.translation_mm."""
    centre = dense[rng.integers(len(dense))]
    radius = rng.uniform(*opts.radius) * extent_mm
    part = dense[np.linalg.norm(dense - centre, axis=1) < radius]
    n = int(rng.integers(opts.points[0], opts.points[1] + 1))
    n_out = int(round(opts.outliers * n))
    clean = part[rng.choice(len(part), min(n - n_out, len(part)), replace=False)]
    noisy = clean + rng.normal(0.0, opts.noise_mm, clean.shape)
    outliers = rng.uniform(clean.min(axis=0), clean.max(axis=0), (n_out, 3))
    mixed = np.concatenate([noisy, outliers])[rng.permutation(len(noisy) + n_out)]
    s = float(np.exp(rng.uniform(*np.log(opts.scale))))
    if opts.max_rotation_deg >= 180.0:
        R = Rotation.random(random_state=rng).as_matrix()
    else:
        axis = rng.normal(size=3)
        angle = np.deg2rad(rng.uniform(0, opts.max_rotation_deg))
        R = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
    direction = rng.normal(size=3)
    t = direction / np.linalg.norm(direction) * rng.uniform(0.0, opts.translation_mm)
    cloud_from_ct = np.eye(4)
    cloud_from_ct[:3, :3], cloud_from_ct[:3, 3] = s * R, t
    return {
        "cloud": mixed @ (s * R).T + t,
        "clean": clean,
        "ct_from_cloud": np.linalg.inv(cloud_from_ct),
        "radius_mm": radius,
    }


def pose_errors(T: np.ndarray, T_true: np.ndarray, clean_mm: np.ndarray) -> dict:
    """Errors of a recovered ``ct_from_cloud`` T against the true one: rotation (deg), scale
    (|s / s_true - 1|) and the distance (mm) between the clean points' centroid mapped by the
    true inverse and T, and the centroid itself."""
    s, s_true = scale_of(T), scale_of(T_true)
    c = clean_mm.mean(axis=0)
    c_cloud = np.linalg.solve(T_true, np.r_[c, 1.0])
    return {
        "rotation_deg": rotation_angle_deg(T, T_true),
        "scale_error": abs(s / s_true - 1.0),
        "centroid_mm": float(np.linalg.norm((T @ c_cloud)[:3] - c)),
    }


def patch_trial(
    ct: CTSurface,
    dense: np.ndarray,
    rng: np.random.Generator,
    opts: PatchTrialOptions = PatchTrialOptions(),
    methods: dict[str, RegisterOptions] | None = None,
) -> dict:
    """One real-anatomy trial registered by every method of ``methods`` (name -> options;
    default {"new": RegisterOptions()}) on the same cloud. Returns {"radius_mm", "points",
    name: {"rotation_deg", "scale_error", "centroid_mm", "success", "ambiguous",
    "runner_up_ratio", "seconds" (wall), "cpu_seconds" (this process, all threads)}}."""
    trial = patch_cloud(dense, ct.extent_mm, rng, opts)
    out = {"radius_mm": trial["radius_mm"], "points": len(trial["cloud"])}
    for name, reg in (methods or {"new": RegisterOptions()}).items():
        start, cpu = time.perf_counter(), time.process_time()
        res = register_similarity(trial["cloud"], ct, reg)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        err = pose_errors(res["ct_from_cloud"], trial["ct_from_cloud"], trial["clean"])
        ok = (
            err["rotation_deg"] <= opts.rotation_tol_deg
            and err["scale_error"] <= opts.scale_tol
            and err["centroid_mm"] <= opts.centroid_tol_mm
        )
        out[name] = {
            **err,
            "success": bool(ok),
            "ambiguous": res["ambiguous"],
            "runner_up_ratio": res["runner_up_ratio"],
            "seconds": seconds,
            "cpu_seconds": cpu,
        }
    return out


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
    return PredictedDepth(
        depth=depth,
        frame_indexes=np.asarray(sfm["view_indexes"], np.int64),
        K=np.asarray(sfm["K"], np.float64),
        mask=(sfm["mask"] == 255).astype(np.uint8),
    )
