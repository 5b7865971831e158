"""Trajectory comparison: similarity (Umeyama) alignment of camera centres and its error.

Monocular SfM is defined up to a similarity (scale, rotation, translation), so an
estimated trajectory is compared with a reference one after the least-squares similarity
that maps the estimated camera centres onto the reference centres.
"""

from __future__ import annotations

import numpy as np

__all__ = ["align_similarity", "camera_centres", "similarity_matrix", "trajectory_error"]


def camera_centres(cam_from_world: np.ndarray) -> np.ndarray:
    """Camera centres in world coordinates (N, 3) of poses ``cam_from_world`` (N, 4, 4):
    c = -R^T t."""
    T = np.asarray(cam_from_world, np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f"cam_from_world must be (N, 4, 4), got {T.shape}")
    R, t = T[:, :3, :3], T[:, :3, 3]
    return -np.einsum("nji,nj->ni", R, t)


def align_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity with ``dst ~ s R src + t`` (Umeyama 1991).

    Args:
        src, dst: (N, 3) corresponding points, N >= 3, not all collinear for a unique R.
    Returns:
        scale s, rotation R (3, 3) with det +1, translation t (3,).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(f"need two (N>=3, 3) arrays of equal shape, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var_s = np.mean(np.sum(xs**2, axis=1))
    s = float(np.trace(np.diag(D) @ S) / var_s)
    t = mu_d - s * R @ mu_s
    return s, R, t


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """:func:`align_similarity` as the 4x4 matrix ``dst_from_src`` = [s R | t]."""
    s, R, t = align_similarity(src, dst)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = s * R, t
    return T


def trajectory_error(est_centres: np.ndarray, ref_centres: np.ndarray) -> dict:
    """Align ``est_centres`` to ``ref_centres`` (both (N, 3), same order) by a similarity and
    report the residual camera-centre error in reference units, in % of the reference
    trajectory length (sum of the distances between consecutive reference centres) and in %
    of the reference extent (diagonal of the centres' bounding box).

    Returns:
        dict with n, scale, rmse, mean, max, length, extent, rmse_pct, max_pct, rmse_extent_pct.
    """
    s, R, t = align_similarity(est_centres, ref_centres)
    aligned = s * np.asarray(est_centres, np.float64) @ R.T + t
    err = np.linalg.norm(aligned - ref_centres, axis=1)
    length = float(np.linalg.norm(np.diff(ref_centres, axis=0), axis=1).sum())
    extent = float(np.linalg.norm(np.ptp(ref_centres, axis=0)))
    rmse = float(np.sqrt((err**2).mean()))

    def pct(x: float, ref: float) -> float:
        return 100 * x / ref if ref > 0 else float("nan")

    return {
        "n": len(err),
        "scale": s,
        "rmse": rmse,
        "mean": float(err.mean()),
        "max": float(err.max()),
        "length": length,
        "extent": extent,
        "rmse_pct": pct(rmse, length),
        "max_pct": pct(float(err.max()), length),
        "rmse_extent_pct": pct(rmse, extent),
    }
