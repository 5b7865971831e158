"""Losses of the endoscopy reference (seed_methods §6.1, §6.2): sparse-flow L1 against SfM,
depth consistency between the two frames of a pair (current and teacher-era forms).

Inputs are the outputs of ``geometry.flow_from_depth`` (normalised flow) and
``geometry.warp_depth_endoscopy`` (``D_{2->1}`` and its intersect mask). Every loss is computed
per sample and then averaged over the batch, as in the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.geometry import pixel_coordinates

__all__ = ["sparse_flow_loss", "depth_consistency_loss", "weighted_depth_consistency_loss"]

_DIMS = (1, 2, 3)


def sparse_flow_loss(flow: Tensor, flow_from_depth: Tensor, mask: Tensor, eps: float = 1.0,
                     reduce: bool = True) -> Tensor:
    """``SparseMaskedL1Loss``: ``mean_b [ sum m |f_sfm - f_depth| / (eps + sum m) ]``.

    Args:
        flow: (B, 2, H, W) SfM sparse flow, normalised by (W, H).
        flow_from_depth: (B, 2, H, W) flow of the predicted depth (same normalisation).
        mask: (B, 1, H, W) 1 at sparse points (the numerator sums both flow channels, the
            denominator counts each point once, as the reference's 1-channel mask does).
        reduce: False = the per-sample losses (B,) instead of their mean.
    """
    num = (mask * (flow - flow_from_depth).abs()).sum(_DIMS)
    per_sample = num / (eps + mask.sum(_DIMS))
    return per_sample.mean() if reduce else per_sample


def depth_consistency_loss(depth: Tensor, warped: Tensor, intersect: Tensor, K: Tensor,
                           eps: float = 1e-5) -> Tensor:
    """``NormalizedDistanceLoss`` (the current reference's depth consistency):
    ``mean_b [ 2 sum m |P(D1) - P(D21)|_1 / (eps mean_m(D1) + sum m (D1 + |D21|)) ]`` with
    ``P(D) = ((u - cx)/fx D, (v - cy)/fy D, D)`` and ``mean_m`` under no_grad.

    Args:
        depth: (B, 1, H, W) frame-1 depth ``D1``; warped: ``D_{2->1}`` (B, 1, H, W).
        intersect: (B, 1, H, W) mask from ``warp_depth_endoscopy``; K: (B, 3, 3).
    """
    K = K if K.dim() == 3 else K[None]
    fx, fy = K[:, 0, 0].view(-1, 1, 1, 1), K[:, 1, 1].view(-1, 1, 1, 1)
    cx, cy = K[:, 0, 2].view(-1, 1, 1, 1), K[:, 1, 2].view(-1, 1, 1, 1)
    pix = pixel_coordinates(*depth.shape[-2:], device=depth.device, dtype=depth.dtype)
    rx, ry = (pix[:, :1] - cx) / fx, (pix[:, 1:2] - cy) / fy
    with torch.no_grad():
        mean = (intersect * depth).sum(_DIMS) / (eps + intersect.sum(_DIMS))
    diff = torch.cat([rx * (depth - warped), ry * (depth - warped), depth - warped], 1).abs()
    num = 2.0 * (intersect * diff).sum(_DIMS)
    den = eps * mean + (intersect * (depth + warped.abs())).sum(_DIMS)
    return (num / den).mean()


def weighted_depth_consistency_loss(depth: Tensor, warped: Tensor, intersect: Tensor, translation: Tensor,
                                    eps: float = 1.0) -> Tensor:
    """Teacher-era ``NormalizedWeightedMaskedL2Loss`` (§6.2): per sample
    ``sum m (D1 - D21)^2 / (0.5 sum m (D1^2 + D21^2) + eps)``, averaged over the batch with
    weights ``1 / (1e-8 + |t|)`` of the pair translations ``translation`` (B, 3)."""
    loss = (intersect * (depth - warped) ** 2).sum(_DIMS) / (
        0.5 * (intersect * (depth * depth + warped * warped)).sum(_DIMS) + eps)
    weights = 1.0 / (1e-8 + translation.reshape(-1, 3).norm(dim=1))
    return (loss * weights).sum() / weights.sum()
