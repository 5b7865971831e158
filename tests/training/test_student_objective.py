"""The driving student's distillation losses on hand-made disparities: a student that differs
from its teacher by a pure scale factor."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import geometry as G
from models.training import kitti_objectives as ko


class _Constant(nn.Module):
    """A "depth network" whose every scale outputs the same disparity (sigmoid units)."""

    def __init__(self, disp: float, scales: int = 2) -> None:
        super().__init__()
        self.disp, self.scales = nn.Parameter(torch.tensor(disp)), scales

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = image.shape
        return [self.disp.expand(b, 1, h // 2**s, w // 2**s) for s in range(self.scales)]


def _log_ratio(student: float, teacher: float, photo: ko.PhotoOptions) -> float:
    depth = [G.disp_to_depth(torch.tensor(d), photo.min_depth, photo.max_depth)[1].item()
             for d in (student, teacher)]
    return math.log(depth[0] / depth[1])


@pytest.mark.parametrize(
    ("loss", "eigen_lambda", "expected"),
    [
        ("log_l1", None, lambda r: abs(r)),
        ("scale_invariant", None, lambda r: 2 * r * r),  # the "+" form: d^2 + (mean d)^2
        ("scale_invariant", 1.0, lambda r: 0.0),  # Eigen's with lambda 1 ignores a global scale
        ("scale_invariant", 0.5, lambda r: 0.5 * r * r),
    ],
)
def test_distillation_losses_of_a_scaled_student(loss, eigen_lambda, expected):
    photo = ko.PhotoOptions(frame_ids=(0,), stereo=False)
    objective = ko.StudentObjective(_Constant(0.5), photo, eigen_lambda, loss)
    image = torch.rand(2, 1, 3, 16, 32)
    value, logs = objective({"color": image, "color_aug": image}, nn.ModuleDict({"depth": _Constant(0.2)}))
    assert value.item() == pytest.approx(expected(_log_ratio(0.2, 0.5, photo)), abs=1e-5)
    assert logs["distill"] == pytest.approx(value.item())


def test_an_unknown_distillation_loss_is_refused():
    with pytest.raises(ValueError, match="log_l2"):
        ko.StudentObjective(_Constant(0.5), ko.PhotoOptions(), loss="log_l2")


class _Depth(nn.Module):
    """An endoscopy "depth network": ``depth`` in rows / columns 2-5, ``outside`` elsewhere."""

    def __init__(self, depth: float, outside: float = 1.0) -> None:
        super().__init__()
        self.depth, self.outside = nn.Parameter(torch.tensor(depth)), outside

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.full((x.shape[0], 1, *x.shape[-2:]), self.outside) + 0 * self.depth
        out[..., 2:6, 2:6] = self.depth
        return out


@pytest.mark.parametrize(
    ("loss", "expected"),
    [("log_l1", math.log(2.0)), ("scale_invariant", 2 * math.log(2.0) ** 2), ("abs_rel", 0.0)],
)
def test_endoscopy_distillation_of_a_scaled_student_on_the_mask(loss, expected):
    from models.training.endo_objectives import DistillObjective

    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0  # outside the endoscope's view nothing counts
    color = torch.rand(2, 2, 3, 8, 8)
    objective = DistillObjective(_Depth(2.0, outside=50.0), None, loss)
    batch = {"mask": mask, "color": color, "color_aug": color}
    value, _ = objective(batch, nn.ModuleDict({"depth": _Depth(1.0)}))
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_abs_rel_distillation_is_the_scaled_relative_error_with_a_bounded_gradient_at_zero():
    """Teacher 1 on the mask; a student 1 on half of it and 3 on the other half is scaled by
    mean(goal) / mean(pred) = 1/2: relative errors 0.5 everywhere. A student output of exactly 0
    (an |output| passing zero) keeps a finite gradient, unlike the logarithmic losses'."""
    from models.losses import distillation_loss

    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :, :2] = 1.0
    goal = torch.ones(1, 1, 4, 4)
    pred = torch.ones(1, 1, 4, 4)
    pred[..., 2:, :] = 3.0
    pred[..., :, 2:] = 1e3  # outside the mask: ignored
    assert distillation_loss(pred, goal, mask, "abs_rel").item() == pytest.approx(0.5, rel=1e-6)
    zero = pred.clone()
    zero[..., 0, 0] = 0.0
    zero.requires_grad_(True)
    distillation_loss(zero, goal, mask, "abs_rel").backward()
    assert torch.isfinite(zero.grad).all() and zero.grad.abs().max() < 1.0
    log_zero = zero.detach().clone().requires_grad_(True)
    distillation_loss(log_zero, goal, mask, "scale_invariant", eigen_lambda=1.0).backward()
    assert log_zero.grad.abs().max() > 1e3
