"""Anchor hypotheses (the first version's search, built for tube-like cavities) and the
first version's whole pipeline, kept to measure the new search against.

Anchor hypotheses put the cloud's centroid at an "anchor" of the CT surface (the centroid of
the CT points within a ball), its principal axis along the anchor's local principal axis (both
directions), rolled about it in ``rolls`` steps (a tube-like cavity is nearly symmetric about
its axis), with the scale from the ratio of cross-section radii (the spread about the principal
axis). Each gets a short scaled point-to-point ICP (Open3D) on coarse samples and is scored by
its RMS distance in the cloud's own units (so that scales compare fairly).

``register_legacy`` is the first version of ``register_similarity``: the best ``top_k`` anchor
hypotheses get scaled point-to-point ICP on a dense CT sample with shrinking correspondence
distances, then rigid point-to-plane ICP. On partial views of real anatomy its scale shrinks
(issue 15); bench/endo_register.py runs it beside the new search.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.ct_surface import CTSurface
from workflow_scripts.endo.register_fine import scale_of
from workflow_scripts.endo.register_global import as_o3d_cloud
from workflow_scripts.endo.register_options import RegisterOptions

__all__ = [
    "anchor_candidates",
    "anchor_hypotheses",
    "coarse_source",
    "pca",
    "register_legacy",
    "scale_guess",
    "similarity",
    "subset",
]
log = logging.getLogger(__name__)
P2P_SCALED = o3d.pipelines.registration.TransformationEstimationPointToPoint(with_scaling=True)
P2PLANE = o3d.pipelines.registration.TransformationEstimationPointToPlane()


def pca(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid (3,), principal axes as columns (3, 3) with det +1 (largest first), std (3,)."""
    c = points.mean(0)
    w, v = np.linalg.eigh(np.cov((points - c).T))
    order = np.argsort(w)[::-1]
    v = v[:, order]
    if np.linalg.det(v) < 0:
        v[:, 2] *= -1
    return c, v, np.sqrt(np.maximum(w[order], 0))


def similarity(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = s * R, t
    return T


def _anchors(
    target: np.ndarray, half_length: float, spacing: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Local frames of the CT: for seeds ``spacing`` apart, the centroid, principal axes and
    cross-section radius (spread about the first axis) of the CT points within ``half_length``."""
    tree = cKDTree(target)
    seeds = np.asarray(as_o3d_cloud(target).voxel_down_sample(spacing).points)
    out, kept = [], []
    for p in seeds:
        idx = tree.query_ball_point(p, half_length)
        if len(idx) < 20:
            continue
        c, axes, std = pca(target[idx])
        if kept and np.min(np.linalg.norm(np.asarray(kept) - c, axis=1)) < spacing:
            continue  # an anchor nearby already (seeds around one ring give the same centroid)
        kept.append(c)
        out.append((c, axes, float(np.hypot(std[1], std[2]))))
    return out


def scale_guess(source: np.ndarray, target: np.ndarray, spacing: float) -> float:
    """CT mm per cloud unit from the ratio of cross-section radii (spread about the first
    principal axis): the cloud's, and the median over CT windows of a fifth of the CT's size."""
    _, _, std_s = pca(source)
    _, _, std_t = pca(target)
    probe = _anchors(target, 0.2 * float(np.linalg.norm(4 * std_t)), 4 * spacing)
    return float(np.median([a[2] for a in probe])) / float(np.hypot(std_s[1], std_s[2]))


def anchor_hypotheses(source: np.ndarray, target: np.ndarray, options: RegisterOptions) -> list[np.ndarray]:
    """Initial similarities (4, 4) from the anchors x directions x rolls x scale factors."""
    c_s, axes_s, std_s = pca(source)
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
                hyps.append(similarity(s, R, c_t - s * R @ c_s))
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


def subset(
    pcd: o3d.geometry.PointCloud, options: RegisterOptions, n: int | None = None
) -> o3d.geometry.PointCloud:
    """At most ``n`` (default options.fine_points) points of ``pcd``, a seeded random subset."""
    n = options.fine_points if n is None else n
    if len(pcd.points) <= n:
        return pcd
    keep = np.random.default_rng(options.seed).choice(len(pcd.points), n, replace=False)
    return pcd.select_by_index(np.sort(keep).tolist())


def coarse_source(points: np.ndarray, options: RegisterOptions) -> tuple[o3d.geometry.PointCloud, float]:
    """The cloud (N, 3), its own units, as an Open3D cloud downsampled to a fifth of its
    cross-section radius (spread about its principal axis) and at most options.coarse_points
    points; returns it and that radius."""
    _, _, std_s = pca(points)
    r_s = float(np.hypot(std_s[1], std_s[2]))
    return subset(as_o3d_cloud(points).voxel_down_sample(r_s / 5), options, options.coarse_points), r_s


def anchor_candidates(
    points: np.ndarray, ct: CTSurface, options: RegisterOptions, initial: list[np.ndarray] | None = None
) -> tuple[list[tuple[float, np.ndarray]], dict]:
    """The anchor hypotheses (or the ``initial`` ct_from_cloud similarities) after a short
    scaled ICP each, best first.

    Args:
        points: (N, 3) cloud in its own unit.
        ct: the CT surface (mm).
        options: RegisterOptions (coarse_*, rolls, scale_factors, min_elongation, max_hypotheses).
        initial: manual initial similarities (4, 4) instead of the anchors.
    Returns:
        ([(score, ct_from_cloud (4, 4))] sorted by score = RMS distance to the coarse CT sample
        in cloud units, capped at 3 coarse spacings), {"hypotheses": tried, "points_coarse": n}.
    """
    coarse_t = ct.sample(options.coarse_spacing_mm, options.seed)
    coarse_pts = np.asarray(coarse_t.points)
    src_coarse, r_s = coarse_source(points, options)
    src_c = np.asarray(src_coarse.points)
    if initial:
        hyps = [np.asarray(T, np.float64) for T in initial]
    elif options.max_hypotheses > 0:
        hyps = anchor_hypotheses(src_c, coarse_pts, options)
    else:
        return [], {"hypotheses": 0, "points_coarse": len(src_c)}
    tree = cKDTree(coarse_pts)
    scored = []
    for T0 in hyps:
        T = _icp(src_coarse, coarse_t, 0.6 * r_s * scale_of(T0), T0, P2P_SCALED, options.coarse_iterations)
        if not np.isfinite(T).all() or not 0.5 < scale_of(T) / scale_of(T0) < 2.0:
            continue  # ICP collapsed or ran away: not a candidate
        scored.append((_score(T, src_c, tree, 3 * options.coarse_spacing_mm), T))
    scored.sort(key=lambda x: x[0])
    return scored, {"hypotheses": len(hyps), "points_coarse": len(src_c)}


def register_legacy(
    points: np.ndarray, ct: CTSurface, options: RegisterOptions, initial: list[np.ndarray] | None = None
) -> tuple[np.ndarray, dict]:
    """The first version's registration (module docstring): returns ``ct_from_cloud`` (4, 4)
    and {"hypotheses", "points_coarse", "points_fine", "seconds": {"coarse", "fine"}}."""
    t1 = time.perf_counter()
    scored, info = anchor_candidates(points, ct, options, initial)
    if not scored:
        raise ValueError("register_legacy: every anchor ICP collapsed")
    t2 = time.perf_counter()
    fine_t = ct.sample(options.fine_spacing_mm, options.seed + 1)
    cloud = as_o3d_cloud(points)  # built once: every candidate downsamples the same cloud
    # every candidate gets the first (widest) fine ICP; only the refine_k best the rest
    dists = options.fine_max_distance_mm
    candidates = []
    for _, T0 in scored[: options.top_k]:
        src_fine = subset(cloud.voxel_down_sample(options.fine_spacing_mm / scale_of(T0)), options)
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
    return T, {
        **info,
        "points_fine": int(n_fine),
        "seconds": {"coarse": t2 - t1, "fine": time.perf_counter() - t2},
    }
