"""Rotations and 6-DoF pose vectors <-> 4x4 matrices (re-exported by :mod:`models.geometry`).

Two parametrisations of the pose networks of the references:

* ``"axis_angle"`` (monodepth2 / Depth Hints, seed_methods §6.4.2): rotation vector ``r`` with
  angle ``|r|`` about ``r / |r|`` (Rodrigues). monodepth2 divides by ``|r| + 1e-7``; we use the
  exact limit near zero, which differs from it by a relative 1e-7.
* ``"euler"`` (SC-Depth, §6.6): angles ``(a, b, c)`` about x, y, z with ``R = Rx(a) Ry(b) Rz(c)``.

A pose ``T = [[R, t], [0, 0, 0, 1]]`` maps points: ``X_a = R X_b + t`` for ``T = a_from_b``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

RotationKind = Literal["axis_angle", "euler"]

__all__ = [
    "RotationKind", "skew", "axis_angle_to_matrix", "matrix_to_axis_angle", "euler_to_matrix",
    "matrix_to_euler", "matrix_to_quaternion", "pose_vec_to_mat", "mat_to_pose_vec", "invert_pose",
]


def _check_vec3(x: Tensor, name: str) -> None:
    if x.dim() != 2 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3), got {tuple(x.shape)}")


def _check_mat(x: Tensor, n: int, name: str) -> None:
    if x.dim() != 3 or x.shape[1:] != (n, n):
        raise ValueError(f"{name} must have shape (B, {n}, {n}), got {tuple(x.shape)}")


def skew(v: Tensor) -> Tensor:
    """Cross-product matrices ``[v]x`` (B, 3, 3) of vectors v (B, 3): ``[v]x w = v x w``."""
    _check_vec3(v, "v")
    x, y, z = v.unbind(1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], 1).view(-1, 3, 3)


def axis_angle_to_matrix(vec: Tensor) -> Tensor:
    """Rotation matrices (B, 3, 3) of rotation vectors (B, 3) in radians (Rodrigues' formula
    ``R = I + sin(t)/t [v]x + (1 - cos(t))/t^2 [v]x^2``, with its Taylor series below t = 1e-4)."""
    _check_vec3(vec, "vec")
    theta2 = (vec * vec).sum(1)
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta**2)
    k = skew(vec)
    eye = torch.eye(3, dtype=vec.dtype, device=vec.device).expand_as(k)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Unit quaternions (B, 4) as (w, x, y, z) with w >= 0 of rotation matrices (B, 3, 3)
    (Shepperd's method: the largest of 4 candidate denominators is used)."""
    _check_mat(R, 3, "R")
    m = R
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    rad = 1.0 + torch.stack([tr, 2 * m[:, 0, 0] - tr, 2 * m[:, 1, 1] - tr, 2 * m[:, 2, 2] - tr], 1)  # 4 q_k^2
    s = 2.0 * torch.sqrt(torch.clamp(rad, min=1e-12))  # 4 |q_k|
    d21, d02, d10 = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    s01, s02, s12 = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]
    cand = torch.stack([
        torch.stack([s[:, 0] / 4, d21 / s[:, 0], d02 / s[:, 0], d10 / s[:, 0]], 1),
        torch.stack([d21 / s[:, 1], s[:, 1] / 4, s01 / s[:, 1], s02 / s[:, 1]], 1),
        torch.stack([d02 / s[:, 2], s01 / s[:, 2], s[:, 2] / 4, s12 / s[:, 2]], 1),
        torch.stack([d10 / s[:, 3], s02 / s[:, 3], s12 / s[:, 3], s[:, 3] / 4], 1),
    ], 1)  # (B, candidate, 4)
    best = rad.argmax(1)
    q = cand[torch.arange(len(R), device=R.device), best]
    q = q / q.norm(dim=1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Rotation vectors (B, 3), angle in [0, pi], of rotation matrices (B, 3, 3)."""
    q = matrix_to_quaternion(R)
    w, xyz = q[:, 0], q[:, 1:]
    n = xyz.norm(dim=1)
    angle = 2.0 * torch.atan2(n, w)
    small = n < 1e-8
    factor = torch.where(small, 2.0 / w.clamp(min=1e-12), angle / torch.where(small, torch.ones_like(n), n))
    return xyz * factor[:, None]


def euler_to_matrix(angles: Tensor) -> Tensor:
    """SC-Depth's ``euler2mat``: angles (B, 3) = rotations about x, y, z (radians) ->
    ``R = Rx(a) @ Ry(b) @ Rz(c)`` (B, 3, 3)."""
    _check_vec3(angles, "angles")
    c, s = torch.cos(angles), torch.sin(angles)
    o, i = torch.zeros_like(c[:, 0]), torch.ones_like(c[:, 0])
    rx = torch.stack([i, o, o, o, c[:, 0], -s[:, 0], o, s[:, 0], c[:, 0]], 1).view(-1, 3, 3)
    ry = torch.stack([c[:, 1], o, s[:, 1], o, i, o, -s[:, 1], o, c[:, 1]], 1).view(-1, 3, 3)
    rz = torch.stack([c[:, 2], -s[:, 2], o, s[:, 2], c[:, 2], o, o, o, i], 1).view(-1, 3, 3)
    return rx @ ry @ rz


def matrix_to_euler(R: Tensor) -> Tensor:
    """Inverse of :func:`euler_to_matrix` for |b| < pi/2: angles (B, 3) of matrices (B, 3, 3)."""
    _check_mat(R, 3, "R")
    b = torch.asin(R[:, 0, 2].clamp(-1.0, 1.0))
    a = torch.atan2(-R[:, 1, 2], R[:, 2, 2])
    c = torch.atan2(-R[:, 0, 1], R[:, 0, 0])
    return torch.stack([a, b, c], 1)


def pose_vec_to_mat(rotation: Tensor, translation: Tensor, kind: RotationKind = "axis_angle",
                    invert: bool = False) -> Tensor:
    """4x4 poses (B, 4, 4) from rotation (B, 3) and translation (B, 3) vectors.

    Args:
        kind: "axis_angle" (monodepth2) or "euler" (SC-Depth, whose network output is
            ``(t, r)``: pass ``rotation=out[:, 3:], translation=out[:, :3]``).
        invert: return the inverse ``[[R^T, -R^T t], [0, 1]]`` (monodepth2's
            ``transformation_from_parameters(invert=True)``, used for frames before the target).
    """
    _check_vec3(translation, "translation")
    R = axis_angle_to_matrix(rotation) if kind == "axis_angle" else euler_to_matrix(rotation)
    t = translation[:, :, None]
    if invert:
        R = R.transpose(1, 2)
        t = -R @ t
    bottom = torch.zeros_like(R[:, :1, :])
    top = torch.cat([R, t], 2)
    T = torch.cat([top, torch.cat([bottom, torch.ones_like(bottom[:, :, :1])], 2)], 1)
    return T


def mat_to_pose_vec(T: Tensor, kind: RotationKind = "axis_angle") -> tuple[Tensor, Tensor]:
    """(rotation (B, 3), translation (B, 3)) of 4x4 poses (B, 4, 4); inverse of
    :func:`pose_vec_to_mat` with ``invert=False``."""
    _check_mat(T, 4, "T")
    R = T[:, :3, :3]
    rot = matrix_to_axis_angle(R) if kind == "axis_angle" else matrix_to_euler(R)
    return rot, T[:, :3, 3]


def invert_pose(T: Tensor) -> Tensor:
    """Inverse of rigid poses (B, 4, 4) in closed form: ``b_from_a`` of ``a_from_b``."""
    _check_mat(T, 4, "T")
    Rt = T[:, :3, :3].transpose(1, 2)
    out = torch.zeros_like(T)
    out[:, :3, :3] = Rt
    out[:, :3, 3:] = -Rt @ T[:, :3, 3:]
    out[:, 3, 3] = 1.0
    return out
