"""Fine similarity fit of a cloud to the CT surface that does not shrink a partial view.

Scaled point-to-point ICP against samples of a whole CT surface is biased towards smaller
scales: a partial view's nearest samples sit on the inner side of every curved wall, and the
closed-form (Umeyama) scale of noisy correspondences is attenuated. This stage instead solves,
by Gauss-Newton, the 7-DoF (scale, rotation, translation) point-to-plane problem against the
exact closest points on the TRIANGLES (``RaycastingScene.compute_closest_points``) with robust
(Tukey) weights:

    min over (sigma, omega, tau) of  sum_i w_i (n_i . (y_i' - q_i))^2,
    y_i' = c + (1 + sigma) Rot(omega) (y_i - c) + tau,

where y_i are the currently registered points (mm), c their centroid, q_i / n_i the closest
surface point and its triangle normal. At the true pose the residuals are zero-mean noise
along the normals, so the true similarity is a stationary point (no pull towards small
scales); tests/endo/test_endo_register_real.py checks it on a real nasal-cavity mesh. The
first iterations add a point-to-point term that fades out (``point_weight``, ``blend``): it
pulls from farther away, and the last iterations are point-to-plane only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.ct_surface import CTSurface

__all__ = ["FineOptions", "fine_similarity", "scale_of", "trimmed_rms"]


@dataclass(frozen=True)
class FineOptions:
    """Options of ``fine_similarity`` (distances in CT millimetres).

    Attributes:
        iterations: Gauss-Newton iterations at most.
        max_distance_mm: points farther than this from the surface get no weight (a gate that
            keeps far outliers and the unseen CT out of the fit).
        tukey_k: Tukey's constant in robust standard deviations (MAD of the point-to-plane
            residuals; 4.685 = 95 % efficiency for Gaussian noise).
        min_sigma_mm: the robust standard deviation is at least this (noise-free clouds).
        tolerance: stop when the update moves no point by more than this fraction of the
            cloud's RMS radius.
        damping: Levenberg-Marquardt damping relative to the normal matrix's trace (keeps
            flat, scale-degenerate patches from drifting).
        point_weight: weight of the point-to-point term |y' - q|^2 beside the point-to-plane
            term at the first iteration; it falls linearly to 0 at ``blend`` of the iterations
            (point-to-point converges from farther away, point-to-plane is unbiased: the last
            iterations are point-to-plane only).
        blend: fraction of the iterations over which point_weight falls to 0.
    """

    iterations: int = 30
    max_distance_mm: float = 3.0
    tukey_k: float = 4.685
    min_sigma_mm: float = 0.02
    tolerance: float = 1e-5
    damping: float = 1e-6
    point_weight: float = 1.0
    blend: float = 0.5


def scale_of(T: np.ndarray) -> float:
    """Scale of a similarity 4x4 (cube root of the determinant of its 3x3 block)."""
    return float(np.cbrt(np.linalg.det(T[:3, :3])))


def _transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ T[:3, :3].T + T[:3, 3]


def trimmed_rms(distances: np.ndarray, keep: float) -> float:
    """RMS of the ``keep`` fraction (0-1] of the smallest distances."""
    d = np.sort(np.abs(np.asarray(distances, np.float64)))
    n = max(1, int(np.ceil(keep * len(d))))
    return float(np.sqrt(np.mean(d[:n] ** 2)))


def _closest(ct: CTSurface, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points on the CT triangles (N, 3) mm and the triangles' unit normals (N, 3)."""
    q = o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
    out = ct.scene.compute_closest_points(q)
    return out["points"].numpy().astype(np.float64), out["primitive_normals"].numpy().astype(np.float64)


def _step(y: np.ndarray, q: np.ndarray, n: np.ndarray, opts: FineOptions, lam: float) -> np.ndarray | None:
    """One robust Gauss-Newton update (4, 4) acting on registered points y (N, 3) mm, or None
    when fewer than 7 points carry weight; ``lam`` weighs the point-to-point term."""
    e = y - q
    dist = np.linalg.norm(e, axis=1)
    r = np.einsum("ij,ij->i", n, e)  # signed point-to-plane residual (mm)
    gate = dist <= opts.max_distance_mm
    if gate.sum() < 7:
        return None
    res = np.sqrt(r**2 + lam * dist**2)  # the robust weight sees the blended residual
    sigma = max(1.4826 * float(np.median(res[gate])), opts.min_sigma_mm)
    u = res / (opts.tukey_k * sigma)
    w = np.where(gate & (u < 1.0), (1.0 - u**2) ** 2, 0.0)
    if np.count_nonzero(w) < 7:
        return None
    c = np.average(y, axis=0, weights=w)
    a = y - c
    J = np.concatenate([np.einsum("ij,ij->i", n, a)[:, None], np.cross(a, n), n], axis=1)  # (N, 7)
    JW = J * w[:, None]
    H, g = JW.T @ J, JW.T @ r
    if lam > 0:  # point-to-point: de/d(sigma) = a, de/d(omega) = -[a]x, de/d(tau) = I
        ax = np.zeros((len(a), 3, 3))
        ax[:, 0, 1], ax[:, 0, 2], ax[:, 1, 2] = -a[:, 2], a[:, 1], -a[:, 0]
        ax -= ax.transpose(0, 2, 1)  # [a]x
        eye = np.broadcast_to(np.eye(3), (len(a), 3, 3))
        Je = np.concatenate([a[:, :, None], -ax, eye], axis=2)  # (N, 3, 7)
        H += lam * np.einsum("n,nki,nkj->ij", w, Je, Je)
        g += lam * np.einsum("n,nki,nk->i", w, Je, e)
    H += opts.damping * np.trace(H) * np.eye(7)
    delta = np.linalg.solve(H, -g)
    M = np.eye(4)
    M[:3, :3] = (1.0 + delta[0]) * Rotation.from_rotvec(delta[1:4]).as_matrix()
    M[:3, 3] = c - M[:3, :3] @ c + delta[4:]
    return M


def fine_similarity(
    points: np.ndarray, ct: CTSurface, T0: np.ndarray, options: FineOptions = FineOptions()
) -> np.ndarray:
    """Robust point-to-plane similarity fit of ``points`` to the CT triangles (module docstring).

    Args:
        points: (N, 3) cloud in its own unit, N >= 7.
        ct: the CT surface (mm).
        T0: initial ``ct_from_cloud`` similarity (4, 4).
        options: FineOptions.
    Returns:
        the refined ``ct_from_cloud`` (4, 4); ``T0`` itself when no point lies within
        ``options.max_distance_mm`` of the surface.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 7:
        raise ValueError(f"fine_similarity: points must be (N>=7, 3), got {points.shape}")
    T = np.asarray(T0, np.float64).copy()
    ramp = max(options.blend * options.iterations, 1e-9)
    for k in range(options.iterations):
        y = _transform(T, points)
        q, n = _closest(ct, y)
        M = _step(y, q, n, options, options.point_weight * max(0.0, 1.0 - k / ramp))
        if M is None or not np.isfinite(M).all():
            break
        T = M @ T
        radius = float(np.sqrt(np.mean(np.sum((y - y.mean(0)) ** 2, axis=1))))
        moved = float(np.max(np.linalg.norm(_transform(M, y) - y, axis=1)))
        if moved <= options.tolerance * max(radius, 1e-12):
            break
    return T
