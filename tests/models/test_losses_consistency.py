"""models.losses.consistency: SC-Depth's geometry consistency, masks and view selection (§6.6)."""

from __future__ import annotations

import pytest
import torch

from models.geometry import pose_vec_to_mat
from models.losses import (
    PairTerms,
    geometry_consistency,
    mean_on_mask,
    sc_depth_losses,
    sc_pairwise_terms,
    self_discovered_mask,
)

H, W, F, Z, B = 16, 24, 20.0, 10.0, 1.0  # the reference camera is B to the left: 2 pixels of disparity
K = torch.tensor([[[F, 0.0, 11.5], [0.0, F, 7.5], [0.0, 0.0, 1.0]]], dtype=torch.float64)


def _plane_image(shift_m: float) -> torch.Tensor:
    """A textured wall at z = Z seen by a camera translated by ``shift_m`` along x."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                          indexing="ij")
    x = (u - 11.5) / F * Z - shift_m
    y = (v - 7.5) / F * Z
    channels = [0.5 + 0.3 * torch.sin(1.7 * x), 0.5 + 0.3 * torch.cos(2.3 * y + x), 0.4 + 0.1 * x / 12]
    return torch.stack(channels)[None]


TGT, REF = _plane_image(0.0), _plane_image(B)
DEPTH = torch.full((1, 1, H, W), Z, dtype=torch.float64)


def _shift(x: float) -> torch.Tensor:
    return pose_vec_to_mat(torch.zeros(1, 3, dtype=torch.float64),
                           torch.tensor([[x, 0.0, 0.0]], dtype=torch.float64))


REF_FROM_TGT = _shift(B)


def test_geometry_consistency_and_mask_values():
    d = geometry_consistency(torch.tensor([2.0, 3.0]), torch.tensor([2.0, 1.0]))
    assert d.tolist() == [0.0, 0.5]
    m = self_discovered_mask(d.requires_grad_())
    assert m.tolist() == [1.0, 0.5] and not m.requires_grad


def test_consistent_pair_has_zero_losses_on_valid_pixels():
    t = sc_pairwise_terms(TGT, REF, DEPTH, DEPTH, K, REF_FROM_TGT)
    valid = t.valid[0, 0] > 0
    assert valid[:, : W - 2].float().mean() > 0.95 and not valid[:, W - 2 :].any()  # zeros padding -> black
    assert t.depth_diff[0, 0][:, : W - 2].abs().max() < 1e-12
    assert t.color[0, 0][:, : W - 2].max() < 1e-12
    assert t.photo[0, 0][:, : W - 5].max() < 1e-6  # the 7x7 SSIM window reaches the black band 3 px further
    assert t.photo[0, 0][:, W - 5 : W - 2].min() > 0.1


def test_wrong_reference_depth_is_inconsistent_and_down_weighted():
    t = sc_pairwise_terms(TGT, REF, DEPTH, DEPTH * 1.2, K, REF_FROM_TGT)
    expected = torch.full((H, W - 2), 2 / 22, dtype=torch.float64)
    torch.testing.assert_close(t.depth_diff[0, 0][:, : W - 2], expected)
    shifted = _shift(0.7)
    plain = sc_pairwise_terms(TGT, REF, DEPTH, DEPTH * 1.2, K, shifted, dynamic_mask=False)
    weighted = sc_pairwise_terms(TGT, REF, DEPTH, DEPTH * 1.2, K, shifted)
    torch.testing.assert_close(weighted.photo, plain.photo * (1 - plain.depth_diff))


def test_automask_drops_pixels_a_static_view_explains():
    t = sc_pairwise_terms(TGT, TGT.clone(), DEPTH, DEPTH, K, REF_FROM_TGT)
    assert t.valid.sum() == 0  # the unwarped reference is already perfect
    no_mask = sc_pairwise_terms(TGT, TGT.clone(), DEPTH, DEPTH, K, REF_FROM_TGT, auto_mask=False)
    assert no_mask.valid.sum() > 100


def test_view_selection_and_mean_on_mask():
    ones = torch.ones(1, 1, 12, 12)
    a = PairTerms(photo=ones * 0.2, color=ones * 0.1, depth_diff=ones * 0.05, valid=ones)
    b = PairTerms(photo=ones * 0.9, color=ones * 0.3, depth_diff=ones * 0.5, valid=ones)
    photo, geo = sc_depth_losses([b, a])
    assert float(photo) == pytest.approx(0.2) and float(geo) == pytest.approx(0.05)
    photo, geo = sc_depth_losses([b, a], min_optimize=False)
    assert float(photo) == pytest.approx(0.55) and float(geo) == pytest.approx(0.275)
    one_column = torch.zeros_like(ones).index_fill_(3, torch.tensor([0]), 1)  # 12 pixels
    assert float(mean_on_mask(ones, one_column)) == 0
