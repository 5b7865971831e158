"""models.geometry: exact values, round trips, sampling conventions, gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from models import geometry as G

K_NP = np.array([[50.0, 0.0, 31.3], [0.0, 48.0, 22.7], [0.0, 0.0, 1.0]])


def _K(b: int = 1, dtype=torch.float64) -> torch.Tensor:
    return torch.from_numpy(K_NP).to(dtype)[None].repeat(b, 1, 1)


def _pose(rot, trans, dtype=torch.float64) -> torch.Tensor:
    return G.pose_vec_to_mat(torch.tensor([rot], dtype=dtype), torch.tensor([trans], dtype=dtype))


class TestBackProjectProject:
    def test_pixel_coordinates(self):
        p = G.pixel_coordinates(2, 3)
        assert p.shape == (1, 3, 2, 3)
        assert p[0, 0].tolist() == [[0, 1, 2], [0, 1, 2]] and p[0, 1].tolist() == [[0, 0, 0], [1, 1, 1]]
        assert (p[0, 2] == 1).all()

    def test_back_project_exact_value(self):
        depth = torch.full((1, 1, 4, 5), 3.0, dtype=torch.float64)
        X = G.back_project(depth, torch.linalg.inv(_K()))
        u, v = 4, 2
        expected = 3.0 * np.array([(u - 31.3) / 50.0, (v - 22.7) / 48.0, 1.0])
        np.testing.assert_allclose(X[0, :, v, u].numpy(), expected, rtol=1e-12)

    @pytest.mark.parametrize("batch", [1, 3])
    def test_project_after_back_project_is_identity(self, batch):
        depth = torch.rand(batch, 1, 6, 7, dtype=torch.float64) * 10 + 0.5
        pix, z = G.project(G.back_project(depth, torch.linalg.inv(_K(batch))), _K(batch))
        grid = G.pixel_coordinates(6, 7, dtype=torch.float64)[:, :2].expand(batch, -1, -1, -1)
        torch.testing.assert_close(pix, grid, atol=1e-6, rtol=0)
        torch.testing.assert_close(z, depth)

    def test_round_trip_through_another_camera(self):
        depth = torch.rand(2, 1, 5, 6, dtype=torch.float64) * 5 + 2
        T = G.pose_vec_to_mat(torch.randn(2, 3, dtype=torch.float64) * 0.1,
                              torch.randn(2, 3, dtype=torch.float64))
        X_other = G.transform_points(T, G.back_project(depth, torch.linalg.inv(_K(2))))
        back = G.transform_points(G.invert_pose(T), X_other)
        torch.testing.assert_close(back, G.back_project(depth, torch.linalg.inv(_K(2))))

    def test_shape_guards(self):
        with pytest.raises(ValueError, match=r"depth must have shape \(B, 1, H, W\)"):
            G.back_project(torch.ones(1, 2, 3, 3), torch.eye(3))
        with pytest.raises(ValueError, match="K must have shape"):
            G.project(torch.ones(1, 3, 2, 2), torch.eye(4))


class TestSampling:
    def _ramp(self, h=4, w=6):
        u = torch.arange(w, dtype=torch.float64).expand(h, w)
        v = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
        return torch.stack([u, v])[None]  # channel 0 = u, 1 = v

    def test_exact_reads_pixel_centres(self):
        img = torch.rand(1, 3, 4, 6, dtype=torch.float64)
        pix = G.pixel_coordinates(4, 6, dtype=torch.float64)[:, :2]
        torch.testing.assert_close(G.sample(img, pix), img)
        half = pix + torch.tensor([0.5, 0.0], dtype=torch.float64)[None, :, None, None]
        out = G.sample(img, half[..., :5])
        torch.testing.assert_close(out, 0.5 * (img[..., :5] + img[..., 1:6]))

    @pytest.mark.parametrize("convention, read_at", [
        ("exact", lambda x, n: x),
        ("monodepth2", lambda x, n: x * n / (n - 1) - 0.5),
        ("endoscopy", lambda x, n: x * (n - 1) / n),
    ])
    def test_where_each_convention_reads(self, convention, read_at):
        ramp = self._ramp()
        pix = torch.tensor([[1.3, 2.0], [1.0, 1.5]], dtype=torch.float64).T.reshape(1, 2, 1, 2)
        out = G.sample(ramp, pix, convention)
        u, v = pix[0, 0, 0], pix[0, 1, 0]
        torch.testing.assert_close(out[0, 0, 0], read_at(u, 6))
        torch.testing.assert_close(out[0, 1, 0], read_at(v, 4))

    def test_in_view_mask(self):
        pix = torch.tensor([[0.0, 5.0, 5.01, -0.01, 2.0], [-1e-6, 3.0, 1.0, 1.0, 2.0]]).reshape(1, 2, 1, 5)
        z = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0]).reshape(1, 1, 1, 5)
        assert G.in_view_mask(pix, z, (4, 6)).flatten().tolist() == [True, True, False, False, False]


class TestWarp:
    def test_identity_pose_returns_source(self):
        src = torch.rand(2, 3, 5, 7, dtype=torch.float64)
        w = G.warp(src, torch.rand(2, 1, 5, 7, dtype=torch.float64) + 1, _K(2),
                   torch.eye(4, dtype=torch.float64).expand(2, 4, 4))
        torch.testing.assert_close(w.image, src)
        assert w.valid.all()

    def test_stereo_shift_of_a_fronto_parallel_plane(self):
        # a source pixel u' = u + f b / z (target camera at x = -b in the source frame... i.e.
        # src_from_tgt translates by +b): exact shift of 50 * 0.4 / 10 = 2 pixels
        h, w = 6, 12
        u = torch.arange(w, dtype=torch.float64).expand(1, 1, h, w)
        src = torch.cat([u, u**2], 1)
        depth = torch.full((1, 1, h, w), 10.0, dtype=torch.float64)
        warped = G.warp(src, depth, _K(), _pose([0, 0, 0], [0.4, 0, 0]))
        ok = warped.valid[0, 0]
        assert ok[:, : w - 2].all() and not ok[:, w - 2 :].any()
        torch.testing.assert_close(warped.image[0, 0][ok], (u[0, 0] + 2.0)[ok])
        torch.testing.assert_close(warped.image[0, 1][ok], ((u[0, 0] + 2.0) ** 2)[ok])
        torch.testing.assert_close(warped.depth, depth)

    def test_gradcheck(self):
        src = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
        depth = (torch.rand(1, 1, 5, 6, dtype=torch.float64) * 2 + 4).requires_grad_()
        rt = (torch.randn(1, 6, dtype=torch.float64) * 0.05).requires_grad_()

        def fn(s, d, p):
            return G.warp(s, d, _K(), G.pose_vec_to_mat(p[:, :3], p[:, 3:]), padding_mode="zeros").image

        assert gradcheck(fn, (src, depth, rt))


class TestEndoscopyGeometry:
    def _endo_reference_u2(self, depth1, K, R, t):
        """numpy transcription of the reference's _warp_coordinate_generate (§6.1)."""
        h, w = depth1.shape
        M = K @ R.T @ np.linalg.inv(K)
        Wv = K @ R.T @ (-t)
        v, u = np.mgrid[0:h, 0:w]
        p = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64)
        q = depth1[..., None] * (p @ M.T) + Wv
        return q[..., 0] / q[..., 2], q[..., 1] / q[..., 2]

    def test_flow_matches_reference_formula(self):
        rng = np.random.default_rng(0)
        h, w = 6, 8
        depth1 = rng.uniform(5, 10, (h, w))
        R = G.axis_angle_to_matrix(torch.from_numpy(rng.normal(0, 0.05, (1, 3)))).numpy()[0]
        t = rng.normal(0, 0.3, 3)
        u2, v2 = self._endo_reference_u2(depth1, K_NP, R, t)
        cam1_from_cam2 = np.eye(4)
        cam1_from_cam2[:3, :3], cam1_from_cam2[:3, 3] = R, t  # (R_1wrt2, t_1wrt2)
        flow = G.flow_from_depth(torch.from_numpy(depth1)[None, None], _K(),
                                 torch.from_numpy(np.linalg.inv(cam1_from_cam2))[None])
        v, u = np.mgrid[0:h, 0:w]
        np.testing.assert_allclose(flow[0, 0].numpy(), (u2 - u) / w, atol=1e-9)
        np.testing.assert_allclose(flow[0, 1].numpy(), (v2 - v) / h, atol=1e-9)

    def test_flow_of_a_sideways_move(self):
        depth = torch.full((1, 1, 4, 5), 8.0, dtype=torch.float64)
        flow = G.flow_from_depth(depth, _K(), _pose([0, 0, 0], [0.16, 0, 0]), normalise=False)
        torch.testing.assert_close(flow[0, 0], torch.full((4, 5), 1.0, dtype=torch.float64))
        torch.testing.assert_close(flow[0, 1], torch.zeros(4, 5, dtype=torch.float64))

    def test_depth_warping_of_a_forward_move(self):
        # camera 2 is 0.5 ahead of camera 1: a wall at z1 = 8.5 is at z2 = 8; D_{2->1} must be 8.5
        h, w = 40, 60
        depth1 = torch.full((1, 1, h, w), 8.5, dtype=torch.float64)
        depth2 = torch.full((1, 1, h, w), 8.0, dtype=torch.float64)
        mask = torch.ones_like(depth1)
        warped, inter = G.warp_depth_endoscopy(depth1, depth2, mask, _K(), _pose([0, 0, 0], [0, 0, -0.5]))
        assert inter[0, 0, 20, 30] == 1 and inter[0, 0, 0, 0] == 0  # corners leave the view
        torch.testing.assert_close(warped[inter > 0], depth1[inter > 0])

    def test_depth_warping_gradcheck(self):
        d1 = (torch.rand(1, 1, 5, 6, dtype=torch.float64) + 6).requires_grad_()
        d2 = (torch.rand(1, 1, 5, 6, dtype=torch.float64) + 6).requires_grad_()
        T = _pose([0.01, -0.02, 0.01], [0.1, 0.05, -0.2])
        mask = torch.ones(1, 1, 5, 6, dtype=torch.float64)
        assert gradcheck(lambda a, b: G.warp_depth_endoscopy(a, b, mask, _K(), T)[0], (d1, d2))

    def test_flow_gradcheck(self):
        d = (torch.rand(1, 1, 4, 5, dtype=torch.float64) + 3).requires_grad_()
        assert gradcheck(lambda x: G.flow_from_depth(x, _K(), _pose([0.02, 0, 0.01], [0.1, 0, 0.3])), (d,))


class TestScaleLayer:
    def test_exact_value(self):
        depth = torch.tensor([[1.0, 2.0], [4.0, 5.0]], dtype=torch.float64).view(1, 1, 2, 2)
        sparse = torch.tensor([[3.0, 0.0], [10.0, 1.0]], dtype=torch.float64).view(1, 1, 2, 2)
        mask = (sparse > 0).double()
        scaled, spread = G.scale_to_sparse_depth(depth, sparse, mask)
        # mean sparse = 14/3; kept: 3 and 10 (1 < 7/3); scales 3/1 and 10/4 -> mean 2.75, std 0.25
        s = np.mean([3 / (1 + 1e-8), 10 / (4 + 1e-8)])
        np.testing.assert_allclose(scaled.numpy(), s * depth.numpy(), rtol=1e-12)
        np.testing.assert_allclose(float(spread), 0.25 / 2.75, rtol=1e-6)

    def test_recovers_the_scale_of_exact_depth(self):
        truth = torch.rand(2, 1, 6, 6, dtype=torch.float64) * 5 + 5
        mask = (torch.rand(2, 1, 6, 6) < 0.3).double()
        scaled, spread = G.scale_to_sparse_depth(truth / torch.tensor([3.7, 0.2]).view(2, 1, 1, 1).double(),
                                                 truth * mask, mask)
        torch.testing.assert_close(scaled, truth)
        assert float(spread) < 1e-6

    def test_gradcheck(self):
        depth = (torch.rand(1, 1, 4, 4, dtype=torch.float64) + 1).requires_grad_()
        sparse = torch.rand(1, 1, 4, 4, dtype=torch.float64) * 3 + 1
        mask = torch.ones(1, 1, 4, 4, dtype=torch.float64)
        assert gradcheck(lambda d: G.scale_to_sparse_depth(d, sparse, mask)[0], (depth,))


class TestDepthAndIntrinsics:
    def test_disp_to_depth_values_and_inverse(self):
        scaled, depth = G.disp_to_depth(torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64), 0.1, 100.0)
        expected = torch.tensor([100.0, 0.1, 1 / (0.01 + 9.99 * 0.5)], dtype=torch.float64)
        torch.testing.assert_close(depth, expected)
        torch.testing.assert_close(scaled, 1 / depth)
        d = torch.rand(10, dtype=torch.float64)
        depth = G.disp_to_depth(d)[1]
        torch.testing.assert_close(G.disp_to_depth(G.depth_to_disp(depth))[1], depth)

    def test_sc_depth(self):
        out = G.sc_depth_from_disp(torch.tensor([0.0, 1.0]))
        torch.testing.assert_close(out, torch.tensor([100.0, 1 / 10.01]))

    def test_scale_intrinsics(self):
        K = _K()[0]
        K2 = G.scale_intrinsics(K, 0.5, 0.25)
        expected = np.array([[25.0, 0, (31.3 + 0.5) * 0.5 - 0.5], [0, 12.0, (22.7 + 0.5) * 0.25 - 0.5],
                             [0, 0, 1]])
        np.testing.assert_allclose(K2.numpy(), expected)
        torch.testing.assert_close(G.scale_intrinsics(K2, 2.0, 4.0), K)
        # a 2x2 area average puts the centre of low-res pixel 0 at high-res coordinate 0.5
        k = torch.eye(3, dtype=torch.float64)
        k[0, 2] = 0.5
        assert float(G.scale_intrinsics(k, 0.5, 0.5)[0, 2]) == 0.0
