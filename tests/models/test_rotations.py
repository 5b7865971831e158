"""models.rotations: axis-angle (monodepth2) and Euler (SC-Depth) against their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from models import rotations as R


def _md2_rot_from_axisangle(vec: np.ndarray) -> np.ndarray:
    """monodepth2's rot_from_axisangle, transcribed to numpy (angle + 1e-7 in the axis)."""
    angle = np.linalg.norm(vec)
    x, y, z = vec / (angle + 1e-7)
    ca, sa = np.cos(angle), np.sin(angle)
    C = 1 - ca
    return np.array([
        [x * x * C + ca, x * y * C - z * sa, z * x * C + y * sa],
        [x * y * C + z * sa, y * y * C + ca, y * z * C - x * sa],
        [z * x * C - y * sa, y * z * C + x * sa, z * z * C + ca],
    ])


def _sc_euler(a: float, b: float, c: float) -> np.ndarray:
    """Rx(a) Ry(b) Rz(c) multiplied out by hand."""
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    return np.array([
        [cb * cc, -cb * sc, sb],
        [ca * sc + sa * sb * cc, ca * cc - sa * sb * sc, -sa * cb],
        [sa * sc - ca * sb * cc, sa * cc + ca * sb * sc, ca * cb],
    ])


def test_axis_angle_matches_monodepth2():
    vecs = np.random.default_rng(0).normal(0, 0.8, (20, 3))
    Rm = R.axis_angle_to_matrix(torch.from_numpy(vecs)).numpy()
    for v, m in zip(vecs, Rm, strict=True):
        np.testing.assert_allclose(m, _md2_rot_from_axisangle(v), atol=1e-6)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(m), 1.0)


def test_axis_angle_rotates_about_its_axis():
    Rz = R.axis_angle_to_matrix(torch.tensor([[0.0, 0.0, np.pi / 2]], dtype=torch.float64))[0]
    torch.testing.assert_close(Rz @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64))


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-3, 0.5, 2.0, 3.1, np.pi - 1e-6])
def test_axis_angle_round_trip(angle):
    axis = np.array([0.3, -0.5, 0.8])
    vec = torch.from_numpy(axis / np.linalg.norm(axis) * angle)[None]
    back = R.matrix_to_axis_angle(R.axis_angle_to_matrix(vec))
    if angle > np.pi - 1e-5:  # at pi the sign of the axis is ambiguous: compare matrices
        torch.testing.assert_close(R.axis_angle_to_matrix(back), R.axis_angle_to_matrix(vec),
                                   atol=1e-6, rtol=0)
    else:
        torch.testing.assert_close(back, vec, atol=1e-9, rtol=1e-7)


def test_quaternion_is_unit_with_nonnegative_w():
    mats = R.axis_angle_to_matrix(torch.randn(50, 3, dtype=torch.float64) * 2)
    q = R.matrix_to_quaternion(mats)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(50, dtype=torch.float64))
    assert (q[:, 0] >= 0).all()


def test_euler_matches_sc_depth_and_round_trips():
    angles = np.random.default_rng(1).uniform(-1.2, 1.2, (10, 3))
    mats = R.euler_to_matrix(torch.from_numpy(angles))
    for a, m in zip(angles, mats.numpy(), strict=True):
        np.testing.assert_allclose(m, _sc_euler(*a), atol=1e-12)
    torch.testing.assert_close(R.matrix_to_euler(mats), torch.from_numpy(angles))


@pytest.mark.parametrize("kind", ["axis_angle", "euler"])
def test_pose_vec_round_trip_and_inverse(kind):
    rot, t = torch.randn(4, 3, dtype=torch.float64) * 0.3, torch.randn(4, 3, dtype=torch.float64)
    T = R.pose_vec_to_mat(rot, t, kind)
    assert torch.equal(T[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64).expand(4, 4))
    torch.testing.assert_close(T[:, :3, 3], t)
    r2, t2 = R.mat_to_pose_vec(T, kind)
    torch.testing.assert_close(r2, rot)
    torch.testing.assert_close(t2, t)
    Tinv = R.pose_vec_to_mat(rot, t, kind, invert=True)
    torch.testing.assert_close(Tinv @ T, torch.eye(4, dtype=torch.float64).expand(4, 4, 4))
    torch.testing.assert_close(R.invert_pose(T), Tinv)


def test_gradcheck():
    v = (torch.randn(3, 3, dtype=torch.float64) * 0.5).requires_grad_()
    assert gradcheck(R.axis_angle_to_matrix, (v,))
    assert gradcheck(R.euler_to_matrix, (v,))
    tiny = (torch.randn(2, 3, dtype=torch.float64) * 1e-6).requires_grad_()
    assert gradcheck(R.axis_angle_to_matrix, (tiny,), eps=1e-9)


def test_shape_guard():
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        R.axis_angle_to_matrix(torch.zeros(3))
