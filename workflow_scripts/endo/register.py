"""Similarity (7-DoF) registration of a predicted point cloud to the CT surface mesh.

``ct_from_cloud`` = s R | t maps cloud points (any unit, e.g. SfM units) to CT millimetres.
No tube, no orientation and no scale is assumed:

1. Hypotheses from two searches, pooled (or only the manual initial poses when given):
   feature hypotheses (register_global.py: Open3D FPFH + sequential RANSAC at a sweep of
   scales, any anatomy) and anchor hypotheses (register_anchors.py: the first version's
   search along a tube's axis, its ``top_k`` best after a short scaled ICP).
2. Every hypothesis gets a short robust fit to the CT triangles (register_fine.py, on
   ``screen_points`` points; the ``probe_k`` best distinct are tried again scaled by each of
   ``probe_factors`` about the cloud's centroid) and a score: the RMS distance to the surface of the
   ``score_keep`` closest of those points, divided by the scale (the cloud's own units, so
   that different scales compare fairly).
3. The ``refine_k`` best DISTINCT ones (rotations more than ``distinct_deg`` or scales more
   than ``distinct_scale`` apart) get the full fine fit (robust point-to-plane with a scale
   term: it does not shrink a partial view) on ``fine_points`` points and are scored again;
   the best two distinct are fitted again until their scores settle.
4. Confidence: the best and the best distinct runner-up; ``runner_up_ratio`` = the
   runner-up's score / the best one's (>= 1; None when every hypothesis ended at the best
   pose) and ``ambiguous`` = ratio < ``ambiguous_ratio``: the cloud fits two poses about
   equally well (a symmetric shape, or a cloud too distorted to tell), and the best one may be
   the wrong one. docs/registration.md says what to do then (manual initial poses).

The residual of every registered point is its distance to the mesh SURFACE (triangles), from
``open3d.t.geometry.RaycastingScene.compute_distance``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.ct_surface import CTSurface, load_ct_surface, residual_stats
from workflow_scripts.endo.register_anchors import anchor_candidates, register_legacy, scale_guess
from workflow_scripts.endo.register_fine import FineOptions, fine_similarity, scale_of, trimmed_rms
from workflow_scripts.endo.register_global import feature_hypotheses, robust_radius
from workflow_scripts.endo.register_options import LEGACY_OPTIONS, RegisterOptions
from workflow_scripts.util import InputDataError

__all__ = [
    "CTSurface",
    "LEGACY_OPTIONS",
    "RegisterOptions",
    "distinct",
    "initial_from_poses",
    "load_ct_surface",
    "read_initial_poses",
    "register_similarity",
    "residual_stats",
    "rotation_angle_deg",
    "scale_guess",
    "scale_of",
]
log = logging.getLogger(__name__)


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


def rotation_angle_deg(A: np.ndarray, B: np.ndarray) -> float:
    """Angle (degrees) between the rotations of two similarities (4, 4)."""
    dR = (A[:3, :3] / scale_of(A)) @ (B[:3, :3] / scale_of(B)).T
    return float(np.degrees(np.arccos(np.clip((np.trace(dR) - 1.0) / 2.0, -1.0, 1.0))))


def distinct(A: np.ndarray, B: np.ndarray, options: RegisterOptions) -> bool:
    """Whether two ``ct_from_cloud`` similarities are distinct poses: rotations more than
    options.distinct_deg degrees or scales more than options.distinct_scale (fraction) apart."""
    return rotation_angle_deg(A, B) > options.distinct_deg or abs(
        np.log(scale_of(A) / scale_of(B))
    ) > np.log1p(options.distinct_scale)


def _subset(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most n rows of points (N, 3), a seeded random subset in the original order."""
    if len(points) <= n:
        return points
    return points[np.sort(np.random.default_rng(seed).choice(len(points), n, replace=False))]


def _score(T: np.ndarray, points: np.ndarray, ct: CTSurface, keep: float) -> float:
    """Trimmed RMS distance of the registered points to the CT triangles, in cloud units."""
    return trimmed_rms(ct.distance(points @ T[:3, :3].T + T[:3, 3]), keep) / scale_of(T)


def _fit_and_score(hyps, points, ct, iterations, options) -> list[tuple[float, np.ndarray]]:
    """Each similarity of ``hyps`` after fine_similarity on ``points`` (its gate: fit_gate x
    the cloud's robust radius in mm at the hypothesis' scale), with its score; sorted. A fit
    that changed the scale by more than x2 collapsed onto (or blew up over) the surface, as on
    a degenerate cloud (e.g. the constant-depth baseline's planes): its start is kept instead,
    so that every cloud gets its best pose, and a poor score says how poor."""
    radius = robust_radius(points)
    out = []
    for T0 in hyps:
        fine = FineOptions(iterations=iterations, max_distance_mm=options.fit_gate * radius * scale_of(T0))
        T = fine_similarity(points, ct, T0, fine)
        if not (np.isfinite(T).all() and 0.5 < scale_of(T) / scale_of(T0) < 2.0):
            T = np.asarray(T0, np.float64)
        out.append((_score(T, points, ct, options.score_keep), T))
    return sorted(out, key=lambda c: c[0])


def _ranked_distinct(scored: list[tuple[float, np.ndarray]], options: RegisterOptions, k: int):
    """The first k entries of a sorted (score, T) list that are distinct from every earlier kept one."""
    kept: list[tuple[float, np.ndarray]] = []
    for score, T in scored:
        if all(distinct(T, K, options) for _, K in kept):
            kept.append((score, T))
            if len(kept) == k:
                break
    return kept


def _check_points(points: np.ndarray, options: RegisterOptions, source_path: str | Path) -> np.ndarray:
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputDataError(
            source_path,
            f"point cloud has shape {points.shape}, expected (N, 3)",
            "write x, y, z vertex properties",
        )
    points = points[np.isfinite(points).all(1)]
    if len(points) < options.min_points:
        raise InputDataError(
            source_path,
            f"point cloud has {len(points)} points, fewer than the {options.min_points} needed to register",
            "check the prediction and its mask (or lower endoscopy.register.min_points)",
        )
    return points


def register_similarity(
    points: np.ndarray,
    ct: CTSurface,
    options: RegisterOptions | None = None,
    initial: list[np.ndarray] | None = None,
    source_path: str | Path = "<cloud>",
) -> dict:
    """Register a cloud to the CT surface with a similarity transform (module docstring).

    Args:
        points: (N, 3) cloud in its own unit (e.g. SfM units), N >= options.min_points.
        ct: the CT surface (mm).
        options: RegisterOptions (None = the defaults); ``legacy=True`` runs the first version
            instead (no confidence).
        initial: initial ``ct_from_cloud`` similarities (4, 4) to start from instead of the
            automatic search (e.g. from ``initial_from_poses``); None = automatic.
        source_path: named in the error for too few points.
    Returns:
        {"ct_from_cloud": (4, 4), "scale": mm per cloud unit, "residuals": (N,) mm of every
        input point, "stats": residual_stats, "points": N, "points_coarse", "points_fine",
        "hypotheses": H, "score": best score (cloud units), "runner_up": (4, 4) or None,
        "runner_up_ratio": float or None, "ambiguous": bool, "seconds": {...}}.
    """
    options = options or RegisterOptions()
    points = _check_points(points, options, source_path)
    t0 = time.perf_counter()
    if options.legacy:
        T, info = register_legacy(points, ct, options, initial)
        return _result(points, ct, T, None, None, None, info, options, t0)
    search = _subset(points, options.search_points, options.seed + 2)  # a fused cloud has 100 k+
    pool = _Pool(search, ct, options)
    if not initial:
        t = time.perf_counter()
        features, feature_info = feature_hypotheses(search, ct, options)
        pool.info.update(feature_info)
        pool.seconds["features"] = time.perf_counter() - t
        pool.add(features)
    ranked = _ranked_distinct(pool.refined, options, 2)
    if initial or (options.max_hypotheses > 0 and (not ranked or _is_ambiguous(ranked, options))):
        # the anchors (tube search) when the features leave it open; or the manual poses
        t = time.perf_counter()
        anchors, anchor_info = anchor_candidates(search, ct, options, initial)
        pool.seconds["anchors"] = time.perf_counter() - t
        pool.info.update(anchors_used=not initial, anchor_hypotheses=anchor_info["hypotheses"],
                         points_coarse=anchor_info["points_coarse"])
        pool.add([T for _, T in anchors[: (len(anchors) if initial else options.top_k)]])
    t = time.perf_counter()
    ranked = _polish(pool.refined, pool.fine, ct, options)
    pool.seconds["fine"] += time.perf_counter() - t
    if not ranked:
        raise InputDataError(
            source_path,
            "no pose hypothesis to fit (no feature correspondences, no anchor hypotheses)",
            "check that the cloud shows the CT's anatomy, or give endoscopy.register.initial_poses",
        )
    best_score, T = ranked[0]
    runner, ratio = (ranked[1][1], _ratio(ranked[1][0], best_score, T)) if len(ranked) > 1 else (None, None)
    info = {**pool.info, "refined": len(pool.refined), "screened": len(pool.screened),
            "seconds": pool.seconds}
    return _result(points, ct, T, runner, ratio, best_score, info, options, t0)


class _Pool:
    """The hypotheses of one registration: each is screened (a short fit on ``screen_points``
    points), the best distinct of them refined (the full fit on ``fine_points`` points); with
    the counts and seconds of each step."""

    def __init__(self, search: np.ndarray, ct: CTSurface, options: RegisterOptions) -> None:
        self.ct, self.options = ct, options
        self.screen = _subset(search, options.screen_points, options.seed)
        self.fine = _subset(search, options.fine_points, options.seed + 1)
        self.screened: list[tuple[float, np.ndarray]] = []
        self.refined: list[tuple[float, np.ndarray]] = []
        self.seconds = {"features": 0.0, "anchors": 0.0, "screen": 0.0, "fine": 0.0}
        self.info = {"scales": 0, "matches": 0, "hypotheses": 0, "anchor_hypotheses": 0, "points_coarse": 0,
                     "points_fine": len(self.fine), "anchors_used": False}

    def add(self, hyps: list[np.ndarray]) -> None:
        """Screen ``hyps`` (ct_from_cloud (4, 4) each) and refine the best distinct of them."""
        t = time.perf_counter()
        new = _fit_and_score(hyps, self.screen, self.ct, self.options.screen_iterations, self.options)
        # scale probes: a short fit started 20 % off in scale may settle at a wrong scale with
        # the right rotation; the best few are tried again at other scales
        best = _ranked_distinct(new, self.options, self.options.probe_k)
        probes = [_scaled_about_centroid(T, f, self.screen) for _, T in best
                  for f in self.options.probe_factors]
        new = sorted(new + _fit_and_score(probes, self.screen, self.ct, self.options.screen_iterations,
                                          self.options), key=lambda c: c[0])
        self.screened.extend(new)
        self.seconds["screen"] += time.perf_counter() - t
        t = time.perf_counter()
        self.refined.extend(_refine(new, self.refined, self.fine, self.ct, self.options))
        self.refined.sort(key=lambda c: c[0])
        self.seconds["fine"] += time.perf_counter() - t
        self.info["hypotheses"] += len(hyps)


def _scaled_about_centroid(T: np.ndarray, factor: float, points: np.ndarray) -> np.ndarray:
    """The similarity T (4, 4) followed by a scaling by ``factor`` about the centroid of the
    registered points (points (N, 3) in the cloud's unit)."""
    c = (points @ T[:3, :3].T + T[:3, 3]).mean(axis=0)
    M = np.eye(4)
    M[:3, :3] *= factor
    M[:3, 3] = c - factor * c
    return M @ T


def _polish(refined, points, ct, options, rounds: int = 3) -> list[tuple[float, np.ndarray]]:
    """Fit the best and the best distinct runner-up of ``refined`` (sorted (score, T)) again,
    each from where it stopped, until neither score improves by 1 % (at most ``rounds``
    times): a start far from its minimum may stop short of it after fine_iterations, and both
    scores decide the confidence. Updates ``refined``; returns its new best two distinct."""
    for _ in range(rounds):
        improved = False
        for score, T in _ranked_distinct(refined, options, 2):
            new = _fit_and_score([T], points, ct, options.fine_iterations, options)
            if new and new[0][0] < 0.99 * score:
                refined[next(i for i, c in enumerate(refined) if c[1] is T)] = new[0]
                improved = True
        refined.sort(key=lambda c: c[0])
        if not improved:
            break
    return _ranked_distinct(refined, options, 2)


def _refine(screened, refined, points, ct, options) -> list[tuple[float, np.ndarray]]:
    """Full fits of the ``refine_k`` best distinct of ``screened`` (skipping poses that
    ``refined`` holds already), then of the next ones until the refined poses hold a distinct
    runner-up (at most 2 refine_k fits)."""
    out: list[tuple[float, np.ndarray]] = []
    order = [
        c
        for c in _ranked_distinct(screened, options, len(screened))
        if all(distinct(c[1], R, options) for _, R in refined)
    ]
    for n, (_, T0) in enumerate(order):
        so_far = sorted(refined + out, key=lambda c: c[0])
        has_runner_up = len(_ranked_distinct(so_far, options, 2)) == 2
        if n >= 2 * options.refine_k or (n >= options.refine_k and has_runner_up):
            break
        out += _fit_and_score([T0], points, ct, options.fine_iterations, options)
    return out


def _is_ambiguous(ranked: list[tuple[float, np.ndarray]], options: RegisterOptions) -> bool:
    return len(ranked) > 1 and _ratio(ranked[1][0], ranked[0][0], ranked[0][1]) < options.ambiguous_ratio


def _ratio(runner: float, best: float, T: np.ndarray) -> float:
    """runner / best, both floored at 1e-4 mm (in cloud units) so that two exact fits give 1."""
    floor = 1e-4 / scale_of(T)
    return float((runner + floor) / (best + floor))


def _result(points, ct, T, runner, ratio, score, info, options, t0) -> dict:
    residuals = ct.distance(points @ T[:3, :3].T + T[:3, 3])
    seconds = dict(info.pop("seconds"))
    seconds["total"] = time.perf_counter() - t0
    return {
        "ct_from_cloud": T,
        "scale": scale_of(T),
        "residuals": residuals,
        "stats": residual_stats(residuals),
        "points": int(len(points)),
        "score": score,
        "runner_up": runner,
        "runner_up_ratio": ratio,
        "ambiguous": bool(ratio is not None and ratio < options.ambiguous_ratio),
        **info,
        "seconds": seconds,
    }
