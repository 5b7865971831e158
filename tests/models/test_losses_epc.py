"""models.losses.epc: EPCDepth's data grafting and self-distillation (seed_methods §6.7)."""

from __future__ import annotations

import math

import pytest
import torch

from models.losses import data_graft, graft, self_distillation_loss


def _batch(b: int = 4, h: int = 10) -> dict[str, torch.Tensor]:
    rows = torch.arange(h, dtype=torch.float64).view(1, 1, h, 1)
    ids = torch.arange(b, dtype=torch.float64).view(b, 1, 1, 1)
    return {"curr": (100 * ids + rows).expand(b, 3, h, 5).clone(),
            "depth_hint": (ids + rows / 100).expand(b, 1, h, 5).clone()}


SIDE = torch.tensor([2, 3, 2, 3])


def test_graft_bottom_rows_within_each_side():
    batch = _batch()
    out = graft(batch, SIDE, rows=4, perms={2: torch.tensor([1, 0]), 3: torch.tensor([0, 1])}, roll=False)
    curr = out["curr"][:, 0, :, 0]
    assert curr[0].tolist() == [0, 1, 2, 3, 204, 205, 206, 207, 208, 209]  # left 0 <- left sample 2
    assert curr[2].tolist() == [200, 201, 202, 203, 4, 5, 6, 7, 8, 9]
    assert torch.equal(curr[1], batch["curr"][1, 0, :, 0])  # right samples kept their own rows
    assert out["depth_hint"][0, 0, 5, 0] == pytest.approx(2.05)
    assert torch.equal(batch["curr"][0, 0, :, 0], torch.arange(10.0, dtype=torch.float64))  # input untouched


def test_graft_roll_moves_rows_up():
    out = graft(_batch(), SIDE, rows=4, perms={2: torch.tensor([0, 1]), 3: torch.tensor([0, 1])}, roll=True)
    assert out["curr"][1, 0, :, 0].tolist() == [104, 105, 106, 107, 108, 109, 100, 101, 102, 103]


def test_data_graft_is_reproducible_and_keeps_rows_of_the_side():
    batch = _batch(6, 10)
    side = torch.tensor([2, 2, 2, 3, 3, 3])
    seen = set()
    for seed in range(12):
        a = data_graft(batch, side, torch.Generator().manual_seed(seed))
        b = data_graft(batch, side, torch.Generator().manual_seed(seed))
        assert all(torch.equal(a[k], b[k]) for k in a)
        for s in (2, 3):
            rows_out = sorted(a["curr"][side == s, 0, :, 0].flatten().tolist())
            rows_in = sorted(batch["curr"][side == s, 0, :, 0].flatten().tolist())
            assert rows_out == rows_in  # a permutation of the side's rows, nothing from the other side
        changed = not torch.equal(a["curr"], batch["curr"])
        seen.add(changed)
    assert seen == {True, False}  # k = 0 (no graft) and k > 0 both occur


def test_self_distillation_exact():
    # 3 decoder scales and 2 encoder scales of 1 x 2 pixels
    disps = [torch.tensor([[v]], dtype=torch.float64).view(1, 1, 1, 2) for v in
             ([0.1, 0.5], [0.3, 0.4], [0.2, 0.9], [0.6, 0.6], [0.7, 0.2])]
    errors = [torch.tensor([[v]], dtype=torch.float64).view(1, 1, 1, 2) for v in
              ([0.5, 0.1], [0.2, 0.3], [0.4, 0.05], [0.3, 0.3], [0.1, 0.4])]
    disps = [d.requires_grad_() for d in disps]
    loss = self_distillation_loss(disps, errors, split=3)
    best_dec, best_enc = [0.3, 0.9], [0.7, 0.6]

    def term(d, best):
        return sum(math.log(abs(b - x) + 1) for b, x in zip(best, d, strict=True)) / 2

    vals = [[0.1, 0.5], [0.3, 0.4], [0.2, 0.9], [0.6, 0.6], [0.7, 0.2]]
    expected = sum(term(v, best_dec if s < 3 else best_enc) for s, v in enumerate(vals)) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()  # the targets are detached: the best scale's own pixel has no pull
    assert disps[1].grad[0, 0, 0, 0] == 0 and disps[0].grad[0, 0, 0, 0] != 0


def test_self_distillation_single_group_and_errors():
    d = [torch.rand(1, 1, 3, 3) for _ in range(4)]
    e = [torch.rand(1, 1, 3, 3) for _ in range(4)]
    assert torch.isfinite(self_distillation_loss(d, e))
    with pytest.raises(ValueError, match="error maps"):
        self_distillation_loss(d, e[:3])
