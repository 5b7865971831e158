"""SGDepth's two additions to a depth stage (seed_methods §6.8): a segmentation branch trained
with it, and the semantic masking of moving objects in video training.

* :class:`JointSegmentation` wraps any objective: the depth loss of the wrapped objective plus
  ``weight x`` the cross-entropy of the depth network's segmentation head on the labelled images
  of the batch (``seg_image`` (B, 3, H, W), ``seg_label`` (B, H, W) trainIds), with SGDepth's
  gradient scaling between the two tasks at the shared encoder (``DepthNet.grad_scales``).
* :class:`MaskingSchedule` and :class:`MovingMasker`: when the masking is on, which optimiser
  steps mask and with which threshold. The masked part of a stage is divided into periods
  (SGDepth: epochs 15-19 of 20); the first only collects IoUs, and at the end of each period the
  threshold becomes a percentile of that period's IoUs (SGDepth's linear schedule: 75 %, 50 %,
  25 %, 0 % with 5 periods). Its state is saved in checkpoints, so a resumed run masks exactly as
  an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models import losses as L
from models.training.engine import Objective

__all__ = ["JointSegmentation", "MaskingSchedule", "MovingMasker", "segment_frames"]


class JointSegmentation:
    """``loss = inner loss + weight x segmentation cross-entropy``; gradient scales set on the
    depth network (``nets["depth"]``, a DepthNet with a segmentation head) at every call."""

    def __init__(self, inner: Objective, weight: float, grad_scales: tuple[float, float],
                 class_weights: Sequence[float] | None = L.SEG_CLASS_WEIGHTS, batch_size: int = 0) -> None:
        """``class_weights``: (19,) of the cross-entropy (default SGDepth's, None = unweighted);
        ``batch_size``: labelled images this process uses per step (the first of its share of
        the batch; 0 = all of them)."""
        self.inner, self.weight, self.grad_scales, self.batch_size = inner, weight, grad_scales, batch_size
        self.class_weights = (None if class_weights is None
                              else torch.as_tensor(class_weights, dtype=torch.float32))

    def __getattr__(self, name: str):  # start_step / state_dict of the wrapped objective
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, batch: dict[str, Tensor], nets: nn.ModuleDict) -> tuple[Tensor, dict[str, float]]:
        net = nets["depth"]
        net.grad_scales = self.grad_scales
        loss, logs = self.inner(batch, nets)
        k = self.batch_size or len(batch["seg_image"])
        logits = net.segment(batch["seg_image"][:k])
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        seg = L.segmentation_loss(logits.float(), batch["seg_label"][:k], weights)
        logs = {**logs, "segmentation": float(seg.detach())}
        return loss + self.weight * seg, logs


@dataclass(frozen=True)
class MaskingSchedule:
    """When and how a stage masks moving objects.

    Attributes:
        start_step: first optimiser step of the masked part (0-based).
        period_steps: optimiser steps per period (>= 1).
        periods: number of periods (>= 2): the threshold of period k > 0 comes from period k-1.
        linear: SGDepth's linear percentile (else ``percent`` throughout).
        percent: the fixed percentile in [0, 1].
    """

    start_step: int
    period_steps: int
    periods: int
    linear: bool = True
    percent: float = 0.1

    def period(self, step: int) -> int | None:
        """The masked period of optimiser step ``step``, None before the masked part."""
        if step < self.start_step:
            return None
        return min((step - self.start_step) // max(1, self.period_steps), self.periods - 1)

    def percentile(self, finished: int) -> float:
        """Percentile of the threshold set at the end of period ``finished``."""
        if not self.linear:
            return self.percent
        return L.MovingObjectMasking.linear_percentile(finished, 0, self.periods)

    @classmethod
    def for_stage(cls, steps: int, start: float, periods: int, linear: bool,
                  percent: float) -> MaskingSchedule:
        """The schedule of a stage of ``steps`` optimiser steps masked from fraction ``start``."""
        start_step = min(round(start * steps), max(0, steps - periods))
        return cls(start_step, max(1, (steps - start_step) // periods), periods, linear, percent)


def segment_frames(net: nn.Module, images: Tensor) -> Tensor:
    """Class ids (N, H, W) int64 of images (N, 3, H, W): the net's segmentation head in eval mode,
    without gradients (SGDepth segments the frames for masking with its eval model)."""
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            return net.segment(images).argmax(1)
    finally:
        net.train(was)


class MovingMasker:
    """The masking state of a stage: the schedule, the current period and SGDepth's IoU log and
    threshold (:class:`models.losses.MovingObjectMasking`)."""

    def __init__(self, schedule: MaskingSchedule) -> None:
        self.schedule = schedule
        self.masking = L.MovingObjectMasking()
        self.current: int | None = None

    def start_step(self, step: int) -> None:
        """Called before optimiser step ``step``: ends the previous period when a new one begins."""
        period = self.schedule.period(step)
        if period != self.current and self.current is not None and period is not None:
            for finished in range(self.current, period):
                self.masking.end_period(self.schedule.percentile(finished))
        self.current = period

    @property
    def active(self) -> bool:
        return self.current is not None

    def mask(self, net: nn.Module, frames: Tensor, pixels: list[Tensor], convention: str) -> Tensor:
        """Keep-mask (B, 1, H, W) float of the target pixels.

        Args:
            frames: (B, F, 3, H, W) the target (index 0) and its source frames.
            pixels: per source frame, (B, 2, H, W) where each target pixel lands in it.
        """
        b, f = frames.shape[:2]
        segs = segment_frames(net, frames.flatten(0, 1)).view(b, f, *frames.shape[-2:])
        warped = [L.warp_segmentation(segs[:, j + 1], pix.detach(), convention)
                  for j, pix in enumerate(pixels)]
        return self.masking.mask(segs[:, 0], warped)

    def state_dict(self) -> dict:
        return {"masking": self.masking.state_dict(), "current": self.current}

    def load_state_dict(self, state: dict) -> None:
        self.masking.load_state_dict(state["masking"])
        self.current = state["current"]
