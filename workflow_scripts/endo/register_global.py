"""Feature hypotheses for the CT registration: Open3D FPFH features and RANSAC at a sweep of
scales, for any anatomy (no tube assumed).

FPFH describes the surface around a point within a fixed radius, so it compares a cloud with the
CT only when both are at the same scale; RANSAC then needs nothing but correspondences. The
scale is therefore searched BEFORE the correspondence step: the cloud is scaled to each value
of a geometric sweep (``scale_step`` apart, over the range that ``view_fraction`` allows), and
at each scale

1. the scaled cloud is downsampled to a voxel of its robust radius / feature_points_per_radius
   (snapped to a power of sqrt(2) mm, so that every scale's cloud has about as many points and
   a small view is described as finely as a large one), isolated points (outliers) are
   dropped, normals and FPFH features are computed exactly as for the CT at that voxel
   (cached per CT and voxel);
2. correspondences are the mutual nearest neighbours in feature space;
3. ``ransac_runs`` rigid RANSAC runs (``registration_ransac_based_on_correspondence``) each
   give a pose; each run drops the correspondences that the poses so far explain, so the runs
   propose different poses (sequential RANSAC).

The poses (with their scale) go to the common pool of register.py, where a short fit to the
CT triangles ranks them. bench/endo_register.py --scale-search compares this with the scale
searched inside RANSAC (similarity estimation) and after it (one scale guess).

RANSAC runs single-threaded (Open3D draws its samples from one generator shared by the
threads, so with several threads the result depends on their timing); seeded per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from workflow_scripts.endo.ct_surface import CTSurface
from workflow_scripts.endo.register_options import RegisterOptions

__all__ = [
    "Features",
    "as_o3d_cloud",
    "cloud_features",
    "ct_features",
    "ct_radius",
    "feature_hypotheses",
    "feature_voxel",
    "mutual_matches",
    "robust_radius",
    "scale_sweep",
    "sequential_ransac",
]
REG = o3d.pipelines.registration


@dataclass
class Features:
    """Points (M, 3) mm with their FPFH features (M, 33)."""

    points: np.ndarray
    features: np.ndarray


def robust_radius(points: np.ndarray) -> float:
    """Median distance of points (N, 3) to their coordinate-wise median point (same unit)."""
    return float(np.median(np.linalg.norm(points - np.median(points, axis=0), axis=1)))


def as_o3d_cloud(points: np.ndarray) -> o3d.geometry.PointCloud:
    """Points (N, 3) as an Open3D point cloud (float64)."""
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))


def _describe(
    pcd: o3d.geometry.PointCloud, voxel: float, options: RegisterOptions, keypoints: int = 0
) -> Features:
    """Downsample (voxel, mm), drop points with fewer than 4 neighbours within 2 voxels,
    normals and FPFH (radii in voxels from options) at every point, or at a seeded random
    subset of ``keypoints`` of them (> 0; the neighbourhoods still use every point)."""
    down = pcd.voxel_down_sample(voxel)
    if len(down.points) >= 5:
        down, _ = down.remove_radius_outlier(nb_points=4, radius=2.0 * voxel)
    if len(down.points) < 5:
        return Features(np.zeros((0, 3)), np.zeros((0, 33)))
    # Normals from the points alone, for the CT as for the cloud: Open3D would orient them
    # along the mesh normals of the CT sample but arbitrarily on the cloud, and FPFH changes
    # with a normal's sign (keeping the mesh's normals lost 4 of 40 real-anatomy trials).
    down.normals = o3d.utility.Vector3dVector(np.zeros((0, 3)))
    normals = o3d.geometry.KDTreeSearchParamHybrid(radius=options.normal_radius * voxel, max_nn=50)
    down.estimate_normals(normals)
    search = o3d.geometry.KDTreeSearchParamHybrid(
        radius=options.feature_radius * voxel, max_nn=options.feature_max_nn
    )
    idx = np.arange(len(down.points))
    if 0 < keypoints < len(idx):
        idx = np.sort(np.random.default_rng(options.seed).choice(len(idx), keypoints, replace=False))
    fpfh = np.asarray(REG.compute_fpfh_feature(down, search, idx.tolist()).data).T.copy()
    return Features(np.asarray(down.points)[idx], fpfh)


def ct_radius(ct: CTSurface, seed: int = 0) -> float:
    """The CT surface's robust radius (mm) from a uniform sample (cached with the sample)."""
    return robust_radius(np.asarray(ct.sample(0.02 * ct.extent_mm, seed).points))


def feature_voxel(radius_mm: float, ct: CTSurface, options: RegisterOptions) -> float:
    """Voxel (mm) for a cloud of robust radius ``radius_mm`` (at the scale tried):
    radius / feature_points_per_radius, snapped to the nearest power of sqrt(2) mm (so that
    the CT is described at a few voxels only) and at least 1/200 of the CT's largest side."""
    v = max(radius_mm / options.feature_points_per_radius, ct.extent_mm / 200.0)
    return float(np.sqrt(2.0) ** np.round(2.0 * np.log2(v)))


def ct_features(ct: CTSurface, voxel: float, options: RegisterOptions) -> Features:
    """The CT's features at ``voxel`` mm (cached on ``ct``): a dense sample (a quarter voxel
    apart) described like a cloud."""
    key = ("fpfh", voxel, options.normal_radius, options.feature_radius, options.feature_max_nn, options.seed)
    if key not in ct.cache:
        ct.cache[key] = _describe(ct.sample(voxel / 4, options.seed + 2), voxel, options)
    return ct.cache[key]


def cloud_features(points: np.ndarray, scale: float, voxel: float, options: RegisterOptions) -> Features:
    """Features of the cloud (N, 3, its own unit) scaled by ``scale`` (mm per unit), at most
    options.feature_keypoints of them."""
    cloud = as_o3d_cloud(np.asarray(points, np.float64) * scale)
    return _describe(cloud, voxel, options, options.feature_keypoints)


def scale_sweep(cloud_radius: float, ct_radius: float, options: RegisterOptions) -> np.ndarray:
    """Scales (mm per cloud unit) at most ``scale_step`` apart (its square for
    scale_search="inside") that put the cloud's robust radius between view_fraction[0] and
    view_fraction[1] of the CT's (both ends included); for "after", their geometric mean."""
    lo, hi = (f * ct_radius / cloud_radius for f in options.view_fraction)
    if options.scale_search == "after":
        return np.array([np.sqrt(lo * hi)])
    step = options.scale_step**2 if options.scale_search == "inside" else options.scale_step
    n = int(np.ceil(np.log(hi / lo) / np.log(step))) + 1
    return lo * (hi / lo) ** (np.arange(n) / max(n - 1, 1))


def _nearest(a: np.ndarray, b: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Index of the nearest row of b (M, D) for every row of a (N, D), float32 brute force in
    blocks (k-d trees are slow in the 33 dimensions of FPFH); ties go to the first row."""
    a32, b32 = np.asarray(a, np.float32), np.asarray(b, np.float32)
    bb = np.einsum("ij,ij->i", b32, b32)
    out = np.empty(len(a32), np.int64)
    for start in range(0, len(a32), chunk):
        block = a32[start : start + chunk]
        out[start : start + chunk] = np.argmin(bb[None, :] - 2.0 * (block @ b32.T), axis=1)
    return out


def mutual_matches(src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indexes (i, j) of the rows of src (N, D) and tgt (M, D) that are each other's nearest
    neighbour (Euclidean)."""
    j = _nearest(src, tgt)
    i = np.flatnonzero(_nearest(tgt[j], src) == np.arange(len(src)))
    return i, j[i]


def _similarity_from_inliers(
    P, Q, src: np.ndarray, tgt: np.ndarray, T: np.ndarray, distance: float, rounds: int = 3
) -> np.ndarray:
    """A RANSAC pose refined to a similarity: least squares (with scale) on the
    correspondences within ``distance`` of the pose, ``rounds`` times; the pose itself when
    fewer than 3 remain. A rigid pose found at a sweep scale 20 % off is close in rotation but
    not in scale; its inliers spread over the view tell the scale."""
    est = REG.TransformationEstimationPointToPoint(True)
    for _ in range(rounds):
        inl = np.flatnonzero(np.linalg.norm(src @ T[:3, :3].T + T[:3, 3] - tgt, axis=1) <= distance)
        if len(inl) < 3:
            break
        corr = o3d.utility.Vector2iVector(np.stack([inl, inl], 1))
        T_new = np.asarray(est.compute_transformation(P, Q, corr))
        if not np.isfinite(T_new).all():
            break
        T = T_new
    return T.copy()


def sequential_ransac(
    src: np.ndarray, tgt: np.ndarray, distance: float, options: RegisterOptions, with_scaling: bool = False
) -> list[np.ndarray]:
    """Up to options.ransac_runs poses ``tgt_from_src`` (4, 4) from corresponding points
    src, tgt (K, 3), each refined to a similarity on its inliers; after each run the
    correspondences within 2 ``distance`` of that pose are dropped. ``with_scaling`` estimates
    a similarity instead of a rigid motion in RANSAC itself (and lets the edge-length check pass
    edges up to 25 % longer or shorter, not 10 %)."""
    P, Q = as_o3d_cloud(src), as_o3d_cloud(tgt)
    alive = np.ones(len(src), bool)
    est = REG.TransformationEstimationPointToPoint(with_scaling)
    checkers = [
        REG.CorrespondenceCheckerBasedOnEdgeLength(0.75 if with_scaling else 0.9),
        REG.CorrespondenceCheckerBasedOnDistance(distance),
    ]
    criteria = REG.RANSACConvergenceCriteria(options.ransac_iterations, 0.9999)
    poses = []
    threads = o3d.utility.get_max_threads()
    o3d.utility.set_max_threads(1)
    try:
        for run in range(options.ransac_runs):
            idx = np.flatnonzero(alive)
            if len(idx) < 9:
                break
            o3d.utility.random.seed(options.seed + run)
            corr = o3d.utility.Vector2iVector(np.stack([idx, idx], axis=1).astype(np.int32))
            found = REG.registration_ransac_based_on_correspondence(
                P, Q, corr, distance, est, 3, checkers, criteria
            )
            T = np.asarray(found.transformation)
            if not np.isfinite(T).all() or np.allclose(T, np.eye(4)):
                break  # no pose found
            alive &= np.linalg.norm(src @ T[:3, :3].T + T[:3, 3] - tgt, axis=1) > 2 * distance
            poses.append(_similarity_from_inliers(P, Q, src, tgt, T, 2 * distance))
    finally:
        o3d.utility.set_max_threads(threads)
    return poses


def feature_hypotheses(
    points: np.ndarray, ct: CTSurface, options: RegisterOptions, scales: np.ndarray | None = None
) -> tuple[list[np.ndarray], dict]:
    """``ct_from_cloud`` similarities (4, 4) from FPFH + sequential RANSAC at every scale of
    the sweep (module docstring).

    Args:
        points: (N, 3) cloud in its own unit.
        ct: the CT surface (mm).
        options: RegisterOptions (feature_*, view_fraction, scale_step, ransac_*).
        scales: scales to try (mm per cloud unit) instead of the sweep.
    Returns:
        (poses, {"scales": S, "matches": total mutual correspondences}).
    """
    radius = robust_radius(points)
    if scales is None:
        scales = scale_sweep(radius, ct_radius(ct, options.seed), options)
    voxels = [feature_voxel(s * radius, ct, options) for s in scales]
    # one pre-downsampling for every scale: a third of the finest voxel the sweep needs
    pre = as_o3d_cloud(points).voxel_down_sample(min(v / s for v, s in zip(voxels, scales, strict=True)) / 3)
    pre_pts = np.asarray(pre.points)
    poses, matches = [], 0
    for s, voxel in zip(scales, voxels, strict=True):
        src = cloud_features(pre_pts, float(s), voxel, options)
        if len(src.points) < 9:
            continue
        tgt = ct_features(ct, voxel, options)
        i, j = mutual_matches(src.features, tgt.features)
        matches += len(i)
        S = np.diag([s, s, s, 1.0])
        for T in sequential_ransac(
            src.points[i],
            tgt.points[j],
            options.ransac_distance * voxel,
            options,
            options.scale_search == "inside",
        ):
            poses.append(T @ S)
    return poses, {"scales": len(scales), "matches": matches}
