"""models.losses.hints: the Depth Hints / EPCDepth selection loss on hand-computed pixels (§6.5, §6.7)."""

from __future__ import annotations

import math

import pytest
import torch

from models.losses import HINT_INVALID_PENALTY, depth_hint_loss, hint_proxy_loss, hint_reprojection_error


def _px(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


# four pixels: won by the reprojection, the identity, the hint, and a pixel without hint
REPROJ = torch.cat([_px(0.1, 0.5, 0.4, 0.2), _px(0.3, 0.6, 0.5, 0.25)], 1)  # 2 frames, min = row 0
IDENT = _px(0.3, 0.2, 0.5, 0.6)
HINT = _px(2.0, 3.0, 4.0, 0.0)
HINT_PE = hint_reprojection_error(_px(0.5, 0.9, 0.1, 0.0), HINT)
DEPTH = _px(1.0, 5.0, 6.0, 7.0)


def test_hint_reprojection_penalty():
    assert HINT_PE.flatten().tolist() == [0.5, 0.9, 0.1, HINT_INVALID_PENALTY]


@pytest.mark.parametrize("variant", ["depth_hints", "epcdepth"])
def test_selection_and_terms(variant):
    out = depth_hint_loss(REPROJ, IDENT, HINT_PE, DEPTH, HINT, variant=variant, noise_std=0.0)
    assert out.reprojection_mask.flatten().tolist() == [1, 0, 1, 1]
    assert out.hint_mask.flatten().tolist() == [0, 0, 1, 0]
    assert float(out.reprojection) == pytest.approx((0.1 + 0.4 + 0.2) / (3 + 1e-7))
    assert float(out.hint) == pytest.approx(math.log(abs(4.0 - 6.0) + 1) / (1 + 1e-7))


def test_variants_differ_only_by_the_validity_factor():
    # a pixel without hint can only win when every other error exceeds the 1000 penalty
    reproj, ident = _px(2000.0), _px(3000.0)
    hint_pe = hint_reprojection_error(_px(0.0), _px(0.0))
    dh = depth_hint_loss(reproj, ident, hint_pe, _px(5.0), _px(0.0), variant="depth_hints", noise_std=0.0)
    epc = depth_hint_loss(reproj, ident, hint_pe, _px(5.0), _px(0.0), variant="epcdepth", noise_std=0.0)
    assert float(dh.hint) == 0.0 and float(epc.hint) == pytest.approx(math.log(6.0))


def test_without_automasking_and_without_hint():
    out = depth_hint_loss(REPROJ, None, HINT_PE, DEPTH, HINT, noise_std=0.0)
    assert out.reprojection_mask.flatten().tolist() == [1, 1, 1, 1]
    assert out.hint_mask.flatten().tolist() == [0, 0, 1, 0]
    plain = depth_hint_loss(REPROJ, IDENT, None, DEPTH, None, noise_std=0.0)
    assert float(plain.hint) == 0 and plain.reprojection_mask.flatten().tolist() == [1, 0, 1, 1]


def test_proxy_loss_gradient_pulls_towards_the_hint():
    depth = _px(6.0, 1.0).requires_grad_()
    hint_proxy_loss(depth, _px(4.0, 3.0), _px(1.0, 1.0)).backward()
    assert depth.grad.flatten()[0] > 0 and depth.grad.flatten()[1] < 0
