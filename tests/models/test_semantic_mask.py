"""models.losses.semantic: SGDepth's moving-object masking on hand-made 4x6 segmentations (IoU,
threshold, excluded pixels, schedule), nearest warping of ids, and the segmentation loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.geometry import pixel_coordinates
from models.losses import (
    SEG_CLASS_WEIGHTS,
    MovingObjectMasking,
    movable,
    moving_iou,
    segmentation_loss,
    warp_segmentation,
)

S, R, C, P, X = 10, 0, 13, 11, 255  # sky, road, car, person, ignore

# image 0: a 2x2 car in the target; the warped source has it one column to the right
# (intersection 2, union 6: IoU 1/3)
T0 = [[S, S, S, S, S, S],
      [R, C, C, R, R, R],
      [R, C, C, R, R, R],
      [R, R, R, R, R, R]]
W0 = [[S, S, S, S, S, S],
      [R, R, C, C, R, R],
      [R, R, C, C, R, R],
      [R, R, R, R, R, R]]
# image 1: a person, seen identically (IoU 1)
T1 = [[S, S, S, P, P, S],
      [R, R, R, P, P, R],
      [R, R, R, R, R, R],
      [R, R, R, R, R, R]]
# image 2: nothing movable (sky and ignore are not): NaN
T2 = [[S, S, X, X, S, S],
      [R, R, R, R, R, R],
      [R, X, X, R, R, R],
      [R, R, R, R, R, R]]
W2 = [[S, S, S, X, X, S],
      [R, R, R, R, R, R],
      [R, R, X, X, R, R],
      [R, R, R, R, R, R]]


def seg(*maps: list[list[int]]) -> torch.Tensor:
    return torch.tensor(maps, dtype=torch.int64)


TARGET, WARPED = seg(T0, T1, T2), seg(W0, T1, W2)


def test_movable_classes():
    ids = torch.arange(256)
    assert movable(ids).nonzero().flatten().tolist() == list(range(11, 100))
    assert movable(torch.tensor([P, 12, C, 18])).all() and not movable(torch.tensor([S, R, 8, X])).any()


def test_moving_iou_per_image():
    iou = moving_iou(TARGET, [WARPED])
    assert iou.shape == (3,) and iou.dtype == torch.float64
    assert iou[0].item() == pytest.approx(1 / 3) and iou[1].item() == 1.0 and math.isnan(iou[2].item())
    assert moving_iou(TARGET, []).isnan().all()


def test_moving_iou_accumulates_over_the_sources():
    # sources 1/3 (2 of 6) and 1 (4 of 4) -> (2 + 4) / (6 + 4), not the mean of the IoUs
    iou = moving_iou(seg(T0), [seg(W0), seg(T0)])
    assert iou.item() == pytest.approx(0.6)
    # a movable pixel only in a warped source makes the union non-empty: IoU 0, not NaN
    assert moving_iou(seg(T2), [seg(T1)]).item() == 0.0


def test_mask_starts_with_nothing_masked_and_logs_finite_ious():
    masking = MovingObjectMasking()
    assert masking.threshold == 0.0
    keep = masking.mask(TARGET, [WARPED])
    assert keep.shape == (3, 1, 4, 6) and keep.dtype == torch.float32 and (keep == 1).all()
    assert masking.iou_log == pytest.approx([1 / 3, 1.0])  # NaN of image 2 not logged


def test_mask_excludes_the_movable_pixels_of_images_under_the_threshold():
    masking = MovingObjectMasking()
    masking.load_state_dict({"threshold": 0.5, "iou_log": []})
    keep = masking.mask(TARGET, [WARPED])
    expected = torch.ones(3, 1, 4, 6)
    expected[0, 0, 1:3, 1:4] = 0  # image 0 (IoU 1/3): target car cols 1-2 + warped car cols 2-3
    assert torch.equal(keep, expected)
    # the same rule with two sources: target car, and each source's car
    w_left = seg([[S] * 6, [C, C, R, R, R, R], [C, C, R, R, R, R], [R] * 6])
    keep = masking.mask(seg(T0), [seg(W0), w_left])  # IoU (2 + 2) / (6 + 6) < 0.5
    expected = torch.ones(1, 1, 4, 6)
    expected[0, 0, 1:3, 0:4] = 0
    assert torch.equal(keep, expected)
    # a threshold above every IoU masks image 1 as well, never image 2 (NaN)
    masking.threshold = 2.0
    keep = masking.mask(TARGET, [WARPED])
    assert torch.equal(keep[1, 0], (~movable(TARGET[1])).float()) and (keep[2] == 1).all()
    assert keep[0, 0].sum() == 24 - 6


def test_threshold_is_the_percentile_of_the_log():
    masking = MovingObjectMasking()
    masking.iou_log = [0.1, 0.5, 0.9, 0.3]
    assert masking.end_period(0.5) == pytest.approx(0.4) == np.percentile([0.1, 0.5, 0.9, 0.3], 50)
    assert masking.threshold == pytest.approx(0.4) and masking.iou_log == []
    assert masking.end_period(0.5) == 0.0  # empty log: nothing masked
    masking.iou_log = [0.1, 0.5, 0.9, 0.3]
    assert masking.end_period(1.0) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="percentile"):
        masking.end_period(50)


def test_linear_percentile_schedule():
    f = MovingObjectMasking.linear_percentile
    assert [f(p, 15, 20) for p in (14, 15, 16, 17, 18, 19)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    assert f(0, 15, 20) == 1.0
    with pytest.raises(ValueError, match="no period"):
        f(19, 19, 20)


def test_state_dict_resumes_identically():
    a = MovingObjectMasking()
    a.mask(TARGET, [WARPED])
    a.end_period(0.5)
    a.mask(seg(T0), [seg(W0), seg(T0)])
    state = a.state_dict()
    assert isinstance(state["threshold"], float) and all(isinstance(v, float) for v in state["iou_log"])
    b = MovingObjectMasking()
    b.load_state_dict(state)
    assert torch.equal(a.mask(TARGET, [WARPED]), b.mask(TARGET, [WARPED]))
    assert a.end_period(0.3) == b.end_period(0.3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_warp_segmentation_nearest(dtype):
    ids = seg(T0, T1)
    grid = pixel_coordinates(4, 6, dtype=dtype)[:, :2].expand(2, 2, 4, 6)
    out = warp_segmentation(ids, grid)
    assert out.dtype == torch.int64 and torch.equal(out, ids)
    # one pixel to the right in the source; the last column reads the border
    shifted = warp_segmentation(ids, grid + torch.tensor([1.0, 0.0], dtype=dtype)[None, :, None, None])
    assert torch.equal(shifted[..., :5], ids[..., 1:]) and torch.equal(shifted[..., 5], ids[..., 5])
    # sub-pixel positions copy one id (no blending of 0 and 13 into 6.5)
    out = warp_segmentation(ids, grid + torch.tensor([0.3, -0.2], dtype=dtype)[None, :, None, None])
    assert torch.equal(out, ids)
    out = warp_segmentation(ids, grid + torch.tensor([0.7, 0.4], dtype=dtype)[None, :, None, None])
    assert torch.equal(out, shifted)
    assert set(warp_segmentation(ids, grid * 0.77 + 0.4).unique().tolist()) <= set(ids.unique().tolist())


def test_segmentation_loss_ignores_255():
    torch.manual_seed(0)
    logits = torch.randn(2, 19, 3, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 19, (2, 3, 4))
    labels[0, 0] = X
    labels[1, :, 1] = X
    weights = torch.tensor(SEG_CLASS_WEIGHTS)
    assert len(SEG_CLASS_WEIGHTS) == 19 and SEG_CLASS_WEIGHTS[0] == pytest.approx(2.8149201869965)
    loss = segmentation_loss(logits, labels, weights)
    keep = labels != X
    nll = -torch.log_softmax(logits, 1).permute(0, 2, 3, 1)[keep].gather(1, labels[keep][:, None])[:, 0]
    w = weights.double()[labels[keep]]
    torch.testing.assert_close(loss, (w * nll).sum() / w.sum())
    (grad,) = torch.autograd.grad(loss, logits)
    assert (grad.permute(0, 2, 3, 1)[~keep] == 0).all()
    # no labelled pixel: 0, not NaN, and still differentiable
    none = segmentation_loss(logits, torch.full_like(labels, X), weights)
    assert none.item() == 0.0 and torch.autograd.grad(none, logits)[0].abs().sum() == 0
    with pytest.raises(ValueError, match="one value per class"):
        segmentation_loss(logits, labels, weights[:5])
