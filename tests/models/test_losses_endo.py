"""models.losses.endo and distill: the endoscopy reference's losses against numpy transcriptions
(seed_methods §6.1, §6.2), and the "+" scale-invariant loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from models.losses import (
    depth_consistency_loss,
    scale_invariant_loss,
    sparse_flow_loss,
    weighted_depth_consistency_loss,
)

RNG = np.random.default_rng(11)
K_NP = np.array([[[40.0, 0, 3.2], [0, 42.0, 2.1], [0, 0, 1]], [[35.0, 0, 2.9], [0, 36.0, 2.4], [0, 0, 1]]])


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def test_sparse_flow_loss_exact():
    f, g = RNG.normal(0, 0.1, (2, 2, 4, 5)), RNG.normal(0, 0.1, (2, 2, 4, 5))
    m = (RNG.random((2, 1, 4, 5)) < 0.4).astype(np.float64)
    expected = np.mean([(m[b] * np.abs(f[b] - g[b])).sum() / (1.0 + m[b].sum()) for b in range(2)])
    assert float(sparse_flow_loss(_t(f), _t(g), _t(m))) == pytest.approx(expected, rel=1e-12)
    assert float(sparse_flow_loss(_t(f), _t(f), _t(m))) == 0


def test_depth_consistency_loss_exact():
    d1, d2 = RNG.uniform(3, 8, (2, 1, 5, 6)), RNG.uniform(3, 8, (2, 1, 5, 6))
    m = (RNG.random((2, 1, 5, 6)) < 0.7).astype(np.float64)
    v, u = np.mgrid[0:5, 0:6]
    losses = []
    for b in range(2):
        (fx, _, cx), (_, fy, cy) = K_NP[b][0], K_NP[b][1]

        def p3(d, fx=fx, fy=fy, cx=cx, cy=cy):
            return np.stack([(u - cx) / fx * d, (v - cy) / fy * d, d])

        mean = (m[b] * d1[b]).sum() / (1e-5 + m[b].sum())
        num = 2.0 * (m[b] * np.abs(p3(d1[b, 0]) - p3(d2[b, 0]))).sum()
        losses.append(num / (1e-5 * mean + (m[b] * (d1[b] + np.abs(d2[b]))).sum()))
    got = depth_consistency_loss(_t(d1), _t(d2), _t(m), _t(K_NP))
    assert float(got) == pytest.approx(np.mean(losses), rel=1e-12)
    assert float(depth_consistency_loss(_t(d1), _t(d1), _t(m), _t(K_NP))) == 0


def test_weighted_depth_consistency_exact():
    d1, d2 = RNG.uniform(3, 8, (2, 1, 3, 4)), RNG.uniform(3, 8, (2, 1, 3, 4))
    m = np.ones((2, 1, 3, 4))
    t = np.array([[0.3, 0.0, 0.4], [0.0, 1.0, 0.0]])  # norms 0.5 and 1 -> weights 2 and 1
    per = [((d1[b] - d2[b]) ** 2).sum() / (0.5 * (d1[b] ** 2 + d2[b] ** 2).sum() + 1.0) for b in range(2)]
    expected = (2 * per[0] + 1 * per[1]) / 3
    got = weighted_depth_consistency_loss(_t(d1), _t(d2), _t(m), _t(t))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_scale_invariant_plus_form():
    goal = RNG.uniform(1, 5, (2, 1, 4, 4))
    mask = np.ones_like(goal)
    mask[:, :, 0] = 0
    pred = goal * RNG.uniform(0.9, 1.1, goal.shape)
    d = np.log(mask * pred + 1e-8) - np.log(mask * goal + 1e-8)
    n = mask.sum((1, 2, 3))
    expected = np.mean((d * d).sum((1, 2, 3)) / n + d.sum((1, 2, 3)) ** 2 / n**2)
    assert float(scale_invariant_loss(_t(pred), _t(goal), _t(mask))) == pytest.approx(expected, rel=1e-10)
    # a global scale c: the reference's "+" gives 2 log(c)^2, Eigen's form with lambda = 1 gives 0
    c = 1.7
    plus = scale_invariant_loss(_t(c * goal), _t(goal), _t(mask))
    eigen = scale_invariant_loss(_t(c * goal), _t(goal), _t(mask), eigen_lambda=1.0)
    assert float(plus) == pytest.approx(2 * np.log(c) ** 2, rel=1e-6) and abs(float(eigen)) < 1e-10


def test_gradcheck():
    d1 = (torch.rand(1, 1, 4, 5, dtype=torch.float64) + 2).requires_grad_()
    d2 = (torch.rand(1, 1, 4, 5, dtype=torch.float64) + 2).requires_grad_()
    m = torch.ones(1, 1, 4, 5, dtype=torch.float64)
    K = _t(K_NP[:1])
    assert gradcheck(lambda a, b: depth_consistency_loss(a, b, m, K), (d1, d2))
    assert gradcheck(lambda a, b: scale_invariant_loss(a, b, m), (d1, d2))
    f = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda x: sparse_flow_loss(x, torch.zeros_like(x) + 0.5, m), (f,))
