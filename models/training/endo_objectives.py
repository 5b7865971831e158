"""Objectives of the endoscopy branch (seed_methods §6.1-6.2, Liu et al.).

* teacher and fine-tune (:class:`SfMObjective`): the depth network's output, rescaled per frame
  to the SfM sparse depths by the depth-scaling layer (gradient through the scale), must
  reproduce the SfM sparse flows of the pair (sparse-flow L1) and agree with the other frame's
  depth warped into this frame (depth consistency); both directions averaged:
  ``loss = dcl_w 0.5 (DC12 + DC21) + sfl_w 0.5 (SF12 + SF21) [+ ssl_w 0.5 (spread1 + spread2)]``.
* student (:class:`DistillObjective`): the frozen teacher's raw depth of the clean frames
  supervises the student's of the augmented frames through the scale-invariant loss ("+" form).

Batches are those of the workflow's ``EndoPairDataset`` (workflow_scripts/endo/dataset.py).
Network input is the reference's: RGB normalised to [-1, 1] and multiplied by the boundary mask.
Depths are in units of the sequence's global scale (the SfM units / global_scale of sfm_data).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models import geometry as G
from models import losses as L

__all__ = ["SfMLossOptions", "SfMObjective", "DistillObjective", "network_input", "pair_depths"]


def network_input(color: Tensor, mask: Tensor) -> Tensor:
    """The reference's input: ``(2 color - 1) * mask`` for color (N, 3, H, W) in [0, 1], mask (N, 1, H, W)."""
    return (2.0 * color - 1.0) * mask


def pair_depths(net: nn.Module, color: Tensor, mask: Tensor) -> Tensor:
    """Raw depth (B, 2, 1, H, W) of both frames of a batch of pairs (one forward pass).

    Args:
        color: (B, 2, 3, H, W) in [0, 1]; mask: (B, 1, H, W) boundary.
    """
    b = color.shape[0]
    x = network_input(color.flatten(0, 1), mask.repeat_interleave(2, 0))
    out = net(x)
    out = out[0] if isinstance(out, (list, tuple)) else out
    return out.view(b, 2, *out.shape[1:])


@dataclass(frozen=True)
class SfMLossOptions:
    """Weights and forms of the SfM losses.

    Attributes:
        sfl_weight: sparse-flow weight (reference: 20 today, 100 in the teacher era).
        dcl_weight: depth-consistency weight (reference: 5 today, 10 in the teacher era).
        dcl_warmup_weight, dcl_warmup_steps: the current reference uses 0.1 for the first 20
            epochs; 0 steps = no warm-up.
        consistency: "normalized_distance" (the current reference, ``NormalizedDistanceLoss``)
            or "weighted_l2" (teacher era, ``NormalizedWeightedMaskedL2Loss`` weighted by the
            inverse pair translation).
        ssl_weight: weight of the depth-scaling layer's scale spread (teacher era 0.3; 0 = off).
        convention: sampling convention of the depth warp (models.geometry).
        flow_outlier_threshold: a pair direction whose sparse-flow loss exceeds it has none
            (the teacher era's failure detection, 0.2; 0 = off; ``losses.sparse_flow_loss``).
    """

    sfl_weight: float = 20.0
    dcl_weight: float = 5.0
    dcl_warmup_weight: float = 0.1
    dcl_warmup_steps: int = 0
    consistency: str = "normalized_distance"
    ssl_weight: float = 0.0
    convention: str = "exact"
    flow_outlier_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.consistency not in ("normalized_distance", "weighted_l2"):
            raise ValueError(
                f"consistency must be normalized_distance or weighted_l2, got {self.consistency!r}"
            )


class SfMObjective:
    """Teacher / fine-tune objective on the network ``nets["depth"]`` (see module docstring)."""

    def __init__(self, opts: SfMLossOptions) -> None:
        self.opts = opts

    def terms(self, batch: dict[str, Tensor], raw: Tensor) -> dict[str, Tensor]:
        """Loss terms of raw depths (B, 2, 1, H, W): ``flow``, ``consistency``, ``spread`` and
        the scaled depths ``depth`` (B, 2, 1, H, W) (exposed for tests and evaluation)."""
        o = self.opts
        mask, K = batch["mask"], batch["K"]
        sd, sdm = batch["sparse_depth"], batch["sparse_depth_mask"]
        d1, spread1 = G.scale_to_sparse_depth(raw[:, 0], sd[:, 0], sdm[:, 0])
        d2, spread2 = G.scale_to_sparse_depth(raw[:, 1], sd[:, 1], sdm[:, 1])
        T21, T12 = batch["cam2_from_cam1"], batch["cam1_from_cam2"]
        flow, fmask = batch["sparse_flow"], batch["sparse_flow_mask"]
        f12 = G.flow_from_depth(d1, K, T21)
        f21 = G.flow_from_depth(d2, K, T12)
        per_sample = torch.stack([  # (2, B): the pairs' both directions
            L.sparse_flow_loss(flow[:, 0] * mask, f12 * mask, fmask[:, 0] * mask, reduce=False),
            L.sparse_flow_loss(flow[:, 1] * mask, f21 * mask, fmask[:, 1] * mask, reduce=False),
        ])
        outlier = per_sample.detach() > o.flow_outlier_threshold
        if o.flow_outlier_threshold <= 0:
            outlier = torch.zeros_like(outlier)
        # an outlier counts 0 (no gradient): a depth that puts points near or behind the other
        # camera's plane has an unbounded flow error (the teacher era's failure detection)
        sf = 0.5 * torch.where(outlier, torch.zeros_like(per_sample), per_sample).mean(1).sum()
        w21, i21 = G.warp_depth_endoscopy(d1, d2, mask, K, T21, convention=o.convention)
        w12, i12 = G.warp_depth_endoscopy(d2, d1, mask, K, T12, convention=o.convention)
        if o.consistency == "normalized_distance":
            dc = 0.5 * (
                L.depth_consistency_loss(d1 * mask, w21, i21, K)
                + L.depth_consistency_loss(d2 * mask, w12, i12, K)
            )
        else:
            t = T21[:, :3, 3]
            dc = 0.5 * (
                L.weighted_depth_consistency_loss(d1 * mask, w21, i21, t)
                + L.weighted_depth_consistency_loss(d2 * mask, w12, i12, t)
            )
        return {
            "flow": sf,
            "consistency": dc,
            "spread": 0.5 * (spread1 + spread2),
            "flow_outliers": outlier.float().mean(),
            "depth": torch.stack([d1, d2], 1),
        }

    def dcl_weight(self, step: int) -> float:
        o = self.opts
        return o.dcl_warmup_weight if step < o.dcl_warmup_steps else o.dcl_weight

    def __call__(self, batch: dict[str, Tensor], nets: nn.ModuleDict) -> tuple[Tensor, dict[str, float]]:
        o = self.opts
        raw = pair_depths(nets["depth"], batch["color_aug"], batch["mask"])
        with torch.autocast(raw.device.type, enabled=False):  # the geometry in fp32 (bf16 runs)
            t = self.terms(batch, raw.float())
        step = int(batch["step"].flatten()[0]) if "step" in batch else o.dcl_warmup_steps
        loss = self.dcl_weight(step) * t["consistency"] + o.sfl_weight * t["flow"]
        if o.ssl_weight:
            loss = loss + o.ssl_weight * t["spread"]
        return loss, {k: float(v.detach()) for k, v in t.items() if k != "depth"}


class DistillObjective:
    """``0.5 SI(S(I1), T(I1)) + 0.5 SI(S(I2), T(I2))`` on the boundary mask, teacher on the clean
    frames, student on the augmented ones (seed_methods §6.2 step 2); with ``loss="log_l1"``,
    the mean ``|log S - log T|`` on the mask instead of SI."""

    def __init__(self, teacher: nn.Module, eigen_lambda: float | None = None,
                 loss: str = "scale_invariant") -> None:
        if loss not in L.DISTILL_LOSSES:
            raise ValueError(f"unknown distillation loss {loss!r}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.eigen_lambda, self.loss = eigen_lambda, loss

    def __call__(self, batch: dict[str, Tensor], nets: nn.ModuleDict) -> tuple[Tensor, dict[str, float]]:
        mask = batch["mask"]
        self.teacher.to(mask.device)
        with torch.no_grad():
            goal = pair_depths(self.teacher, batch["color"], mask).float()
        pred = pair_depths(nets["depth"], batch["color_aug"], mask).float()
        m = mask.unsqueeze(1).expand_as(goal).flatten(0, 1)
        loss = L.distillation_loss(pred.flatten(0, 1), goal.flatten(0, 1), m, self.loss, self.eigen_lambda)
        return loss, {"distill": float(loss.detach())}
