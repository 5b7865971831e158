"""Similarity (7-DoF) registration of a predicted point cloud to the CT surface mesh.

``ct_from_cloud`` = s R | t maps cloud points (any unit, e.g. SfM units) to CT millimetres.
Two stages, both with Open3D's ICP (no ICP of our own):

1. Coarse, fully automatic (or from a manual initial pose): hypotheses that put the cloud's
   centroid at an "anchor" of the CT surface (the centroid of the CT points within a ball), its
   principal axis along the anchor's local principal axis (both directions), rolled about it in
   ``rolls`` steps (a tube-like cavity is nearly symmetric about its axis, so every roll must be
   tried), with the scale from the ratio of cross-section radii (the spread about the principal
   axis). Each hypothesis gets a short scaled point-to-point ICP on coarse samples; the best
   ``top_k`` (lowest RMS in the cloud's own units, so that scales compare fairly) go on.
2. Fine: scaled point-to-point ICP on a dense sample of the mesh with shrinking correspondence
   distances, then point-to-plane ICP (rigid, scale kept) on the triangle normals. Each of the
   ``top_k`` gets the first (widest) distance; the ``refine_k`` closest to the surface then get
   the rest, and the closest of those wins.

The residual of every registered point is its distance to the mesh SURFACE (triangles), from
``open3d.t.geometry.RaycastingScene.compute_distance``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.ct_surface import CTSurface, load_ct_surface, residual_stats
from workflow_scripts.util import InputDataError
from workflow_scripts.util.options import option

__all__ = [
    "CTSurface",
    "RegisterOptions",
    "initial_from_poses",
    "load_ct_surface",
    "read_initial_poses",
    "register_similarity",
    "residual_stats",
    "scale_guess",
    "scale_of",
]
log = logging.getLogger(__name__)
P2P_SCALED = o3d.pipelines.registration.TransformationEstimationPointToPoint(with_scaling=True)
P2PLANE = o3d.pipelines.registration.TransformationEstimationPointToPlane()


@dataclass(frozen=True, kw_only=True)
class RegisterOptions:
    """register_ct -> results/endo/registration/<stage>/<seq>.json (ct_from_sfm 4x4, scale in mm per
    SfM unit, residual mean/median/RMS/p95 in mm, counts, timing) and <seq>.ply (the registered
    cloud, CT frame, mm). 7-DoF similarity: automatic multi-start (or a manual initial pose) +
    scaled ICP (Open3D); residual = distance to the mesh triangles. Lengths in CT millimetres."""

    initial_poses: str = option(
        "", "Manual initial poses, one file per sequence ({seq} is replaced), in the endoscopy reference's "
        "format: lines 'frame, tx, ty, tz, qw, qx, qy, qz' = that frame's camera pose in the CT (camera -> "
        "CT, mm). \"\" = fully automatic.")
    flip_yz: bool = option(
        True, "Negate the y and z axes of the manual rotations (the reference does: viewer cameras look "
        "along -z with y up); false = the poses are already in the OpenCV camera convention.")
    coarse_spacing_mm: float = option(1.0, "CT sample spacing of the coarse search.", exclusiveMinimum=0)
    fine_spacing_mm: float = option(0.3, "CT sample spacing of the fine ICP (also the cloud's spacing).",
                                    exclusiveMinimum=0)
    rolls: int = option(8, "Coarse hypotheses per anchor and direction, evenly spaced about the cloud's "
                        "principal axis (a tube is nearly symmetric about its axis).", minimum=1)
    scale_factors: tuple[float, ...] = option((1.0,), "Multiples of the radius-ratio scale guess tried per "
                                              "anchor.", minItems=1)
    min_elongation: float = option(
        1.25, "A cloud whose first principal spread is below this multiple of the second has no stable "
        "axis: the 60 icosahedral rotations are tried instead.", minimum=1)
    max_hypotheses: int = option(1200, "At most this many coarse ICPs (anchors are thinned).", minimum=1)
    coarse_points: int = option(400, "Cloud points (random subset) in the coarse stage.", minimum=10)
    fine_points: int = option(6000, "Cloud points in the fine stage (residuals are of every point).",
                              minimum=10)
    coarse_iterations: int = option(30, "ICP iterations per coarse hypothesis.", minimum=1)
    top_k: int = option(4, "Best coarse hypotheses that get the first fine ICP.", minimum=1)
    refine_k: int = option(2, "Of those, the ones closest to the surface that get the remaining fine ICPs.",
                           minimum=1)
    fine_iterations: int = option(60, "ICP iterations per fine call.", minimum=1)
    fine_max_distance_mm: tuple[float, ...] = option(
        (3.0, 1.0, 0.5), "Correspondence distances of the fine stage (shrinking): scaled point-to-point ICP "
        "at each, then point-to-plane ICP at the last.", minItems=1)
    min_points: int = option(200, "A cloud with fewer points is an error.", minimum=3)
    seed: int = field(default=0)


def _quat_matrix(wxyz: np.ndarray) -> np.ndarray:
    """Rotation of a (w, x, y, z) quaternion (normalised first; the reference's formula)."""
    w, x, y, z = wxyz
    return Rotation.from_quat([x, y, z, w]).as_matrix()


def read_initial_poses(path: str | Path, flip_yz: bool = True) -> dict[int, np.ndarray]:
    """Manual initial poses in the reference's format (ENDO:utils.py:read_initial_pose_file):
    one line per frame ``frame, tx, ty, tz, qw, qx, qy, qz`` = the pose of that frame's camera
    in the CT frame (camera -> CT; translation in mm). ``flip_yz`` negates the y and z axes of
    the rotation as the reference does (a camera looking along -z, y up, as in CT viewers).

    Returns:
        {frame: ct_from_cam (4, 4)} (rigid; the scale is estimated by the registration).
    """
    path = Path(path)
    fix = "write one line 'frame, tx, ty, tz, qw, qx, qy, qz' per frame (comma separated)"
    poses = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            vals = [float(v) for v in line.replace(",", " ").split()]
        except ValueError as err:
            raise InputDataError(path, f"line {n} is not numeric ({line!r})", fix) from err
        if len(vals) != 8 or np.linalg.norm(vals[4:]) < 1e-9:
            raise InputDataError(path, f"line {n} has {len(vals)} values or a zero quaternion", fix)
        R = _quat_matrix(np.array(vals[4:]))
        if flip_yz:
            R[:, 1:] *= -1.0
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, vals[1:4]
        poses[int(vals[0])] = T
    if not poses:
        raise InputDataError(path, "holds no pose", fix)
    return poses


def initial_from_poses(
    ct_from_cam: dict[int, np.ndarray],
    view_indexes: np.ndarray,
    cam_from_world: np.ndarray,
    scale: float,
    factors: tuple[float, ...] = (1.0,),
) -> list[np.ndarray]:
    """Initial ``ct_from_world`` similarities from manual camera poses in the CT (mm):
    ct_from_cam @ S(scale * f) @ cam_from_world for every posed frame that SfM registered and
    every factor f (the scale pivots about that camera, as in the reference)."""
    out = []
    for v, frame in enumerate(view_indexes):
        if int(frame) in ct_from_cam:
            for f in factors:
                S = np.diag([scale * f] * 3 + [1.0])
                out.append(ct_from_cam[int(frame)] @ S @ cam_from_world[v])
    return out


def _pcd(points: np.ndarray) -> o3d.geometry.PointCloud:
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))


def _pca(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid (3,), principal axes as columns (3, 3) with det +1 (largest first), std (3,)."""
    c = points.mean(0)
    w, v = np.linalg.eigh(np.cov((points - c).T))
    order = np.argsort(w)[::-1]
    v = v[:, order]
    if np.linalg.det(v) < 0:
        v[:, 2] *= -1
    return c, v, np.sqrt(np.maximum(w[order], 0))


def _similarity(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = s * R, t
    return T


def scale_of(T: np.ndarray) -> float:
    """Scale of a similarity 4x4 (cube root of the determinant of its 3x3 block)."""
    return float(np.cbrt(np.linalg.det(T[:3, :3])))


def _anchors(
    target: np.ndarray, half_length: float, spacing: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Local frames of the CT: for seeds ``spacing`` apart, the centroid, principal axes and
    cross-section radius (spread about the first axis) of the CT points within ``half_length``."""
    tree = cKDTree(target)
    seeds = np.asarray(_pcd(target).voxel_down_sample(spacing).points)
    out, kept = [], []
    for p in seeds:
        idx = tree.query_ball_point(p, half_length)
        if len(idx) < 20:
            continue
        c, axes, std = _pca(target[idx])
        if kept and np.min(np.linalg.norm(np.asarray(kept) - c, axis=1)) < spacing:
            continue  # an anchor nearby already (seeds around one ring give the same centroid)
        kept.append(c)
        out.append((c, axes, float(np.hypot(std[1], std[2]))))
    return out


def scale_guess(source: np.ndarray, target: np.ndarray, spacing: float) -> float:
    """CT mm per cloud unit from the ratio of cross-section radii (spread about the first
    principal axis): the cloud's, and the median over CT windows of a fifth of the CT's size."""
    _, _, std_s = _pca(source)
    _, _, std_t = _pca(target)
    probe = _anchors(target, 0.2 * float(np.linalg.norm(4 * std_t)), 4 * spacing)
    return float(np.median([a[2] for a in probe])) / float(np.hypot(std_s[1], std_s[2]))


def _coarse_hypotheses(
    source: np.ndarray, target: np.ndarray, options: RegisterOptions
) -> list[np.ndarray]:
    """Initial similarities (4, 4) from the anchors x directions x rolls x scale factors."""
    c_s, axes_s, std_s = _pca(source)
    r_s = float(np.hypot(std_s[1], std_s[2]))
    proj = (source - c_s) @ axes_s[:, 0]
    half_s = max(0.5 * float(np.percentile(proj, 98) - np.percentile(proj, 2)), r_s)
    s0 = scale_guess(source, target, options.coarse_spacing_mm)
    anchors = _anchors(target, s0 * half_s, max(s0 * half_s / 3, 2 * options.coarse_spacing_mm))
    if std_s[0] >= options.min_elongation * std_s[1]:
        # Elongated (a cavity segment): principal axis along the anchor's, both ways, rolled.
        flips = (np.eye(3), np.diag([-1.0, -1.0, 1.0]))
        angles = 2 * np.pi * np.arange(options.rolls) / options.rolls
        rolls = [Rotation.from_rotvec([a, 0, 0]).as_matrix() for a in angles]
        frames = [(roll @ flip, True) for flip in flips for roll in rolls]
    else:  # no stable axis: the 60 rotations of the icosahedral group (at most ~38 deg apart)
        frames = [(R, False) for R in Rotation.create_group("I").as_matrix()]
    per_anchor = len(frames) * len(options.scale_factors)
    step = int(np.ceil(len(anchors) * per_anchor / options.max_hypotheses))
    anchors = anchors[::step]  # seeds come in voxel order: a stride keeps them spread out
    hyps = []
    for c_t, axes_t, r_t in anchors:
        for M, local in frames:
            R = axes_t @ M @ axes_s.T if local else M
            for f in options.scale_factors:
                s = f * r_t / r_s
                hyps.append(_similarity(s, R, c_t - s * R @ c_s))
    log.info("coarse: scale guess %.4g, %d anchors, %d hypotheses", s0, len(anchors), len(hyps))
    return hyps


def _icp(src, tgt, dist, init, method, iterations):
    crit = o3d.pipelines.registration.ICPConvergenceCriteria(
        relative_fitness=1e-7, relative_rmse=1e-7, max_iteration=iterations
    )
    return o3d.pipelines.registration.registration_icp(src, tgt, dist, init, method, crit).transformation


def _score(T: np.ndarray, source: np.ndarray, tree: cKDTree, cap: float) -> float:
    """RMS of the nearest-sample distances capped at ``cap`` (mm), divided by the scale."""
    pts = source @ T[:3, :3].T + T[:3, 3]
    d, _ = tree.query(pts, distance_upper_bound=cap)
    return float(np.sqrt(np.mean(np.minimum(d, cap) ** 2)) / scale_of(T))


def _kept_scale(T: np.ndarray, T0: np.ndarray) -> np.ndarray:
    """``T``, or ``T0`` when fine ICP diverged or moved the scale by more than x1.5: scaled ICP
    can shrink a cloud that fits nowhere onto one spot of the wall."""
    if np.isfinite(T).all() and 2 / 3 < scale_of(T) / scale_of(T0) < 1.5:
        return T
    log.warning("fine ICP moved the scale %.4g -> %.4g: coarse pose kept", scale_of(T0), scale_of(T))
    return T0


def _fine_score(T: np.ndarray, source: o3d.geometry.PointCloud, ct: CTSurface) -> float:
    """RMS distance (mm) of the registered points to the CT surface, divided by the scale."""
    pts = np.asarray(source.points)
    d = ct.distance(pts @ T[:3, :3].T + T[:3, 3])
    return float(np.sqrt(np.mean(d**2)) / scale_of(T))


def _subset(
    pcd: o3d.geometry.PointCloud, options: RegisterOptions, n: int | None = None
) -> o3d.geometry.PointCloud:
    """At most ``n`` (default options.fine_points) points of ``pcd``, a seeded random subset."""
    n = options.fine_points if n is None else n
    if len(pcd.points) <= n:
        return pcd
    keep = np.random.default_rng(options.seed).choice(len(pcd.points), n, replace=False)
    return pcd.select_by_index(np.sort(keep).tolist())


def register_similarity(
    points: np.ndarray,
    ct: CTSurface,
    options: RegisterOptions = RegisterOptions(),
    initial: list[np.ndarray] | None = None,
    source_path: str | Path = "<cloud>",
) -> dict:
    """Register a cloud to the CT surface with a similarity transform.

    Args:
        points: (N, 3) cloud in its own unit (e.g. SfM units), N >= options.min_points.
        ct: the CT surface (mm).
        initial: initial ``ct_from_cloud`` similarities (4, 4) to start from instead of the
            automatic search (e.g. from ``initial_from_poses``); None = automatic.
        source_path: named in the error for too few points.
    Returns:
        {"ct_from_cloud": (4, 4), "scale": mm per cloud unit, "residuals": (N,) mm of every
        input point, "stats": residual_stats, "points": N, "points_fine": M, "hypotheses": H,
        "seconds": {...}}.
    """
    points = np.asarray(points, np.float64)
    points = points[np.isfinite(points).all(1)]
    if len(points) < options.min_points:
        raise InputDataError(
            source_path,
            f"point cloud has {len(points)} points, fewer than the {options.min_points} needed to register",
            "check the prediction and its mask (or lower endoscopy.register.min_points)",
        )
    t0 = time.perf_counter()
    coarse_t = ct.sample(options.coarse_spacing_mm, options.seed)
    fine_t = ct.sample(options.fine_spacing_mm, options.seed + 1)
    coarse_pts = np.asarray(coarse_t.points)
    t1 = time.perf_counter()
    # Source in its own units: spacing relative to its cross-section radius (scale unknown yet).
    _, _, std_s = _pca(points)
    r_s = float(np.hypot(std_s[1], std_s[2]))
    cloud = _pcd(points)  # built once: every candidate downsamples the same cloud
    src_coarse = _subset(cloud.voxel_down_sample(r_s / 5), options, options.coarse_points)
    if initial:
        hyps = [np.asarray(T, np.float64) for T in initial]
    else:
        hyps = _coarse_hypotheses(np.asarray(src_coarse.points), coarse_pts, options)
    tree = cKDTree(coarse_pts)
    src_c = np.asarray(src_coarse.points)
    scored = []
    for T0 in hyps:
        T = _icp(src_coarse, coarse_t, 0.6 * r_s * scale_of(T0), T0, P2P_SCALED, options.coarse_iterations)
        if not np.isfinite(T).all() or not 0.5 < scale_of(T) / scale_of(T0) < 2.0:
            continue  # ICP collapsed or ran away: not a candidate
        scored.append((_score(T, src_c, tree, 3 * options.coarse_spacing_mm), T))
    scored.sort(key=lambda x: x[0])
    t2 = time.perf_counter()
    # every candidate gets the first (widest) fine ICP; only the refine_k best the rest
    dists = options.fine_max_distance_mm
    candidates = []
    for _, T0 in scored[: options.top_k]:
        src_fine = _subset(cloud.voxel_down_sample(options.fine_spacing_mm / scale_of(T0)), options)
        T = _kept_scale(_icp(src_fine, fine_t, dists[0], T0, P2P_SCALED, options.fine_iterations), T0)
        candidates.append((_fine_score(T, src_fine, ct), T, T0, src_fine))
    best = None
    for _, T, T0, src_fine in sorted(candidates, key=lambda c: c[0])[: options.refine_k]:
        for dist in dists[1:]:
            T = _icp(src_fine, fine_t, dist, T, P2P_SCALED, options.fine_iterations)
        T = _kept_scale(_icp(src_fine, fine_t, dists[-1], T, P2PLANE, options.fine_iterations), T0)
        score = _fine_score(T, src_fine, ct)
        if best is None or score < best[0]:
            best = (score, T, len(src_fine.points))
    _, T, n_fine = best
    t3 = time.perf_counter()
    residuals = ct.distance(points @ T[:3, :3].T + T[:3, 3])
    return {
        "ct_from_cloud": T,
        "scale": scale_of(T),
        "residuals": residuals,
        "stats": residual_stats(residuals),
        "points": int(len(points)),
        "points_coarse": int(len(src_c)),
        "points_fine": int(n_fine),
        "hypotheses": len(hyps),
        "seconds": {
            "sampling": t1 - t0,
            "coarse": t2 - t1,
            "fine": t3 - t2,
            "total": time.perf_counter() - t0,
        },
    }
