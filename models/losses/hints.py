"""Depth-hint loss of Depth Hints (seed_methods §6.5) and EPCDepth (§6.7).

Per scale, with the reprojection error of the predicted depth, the identity (unwarped) error and
the error of warping with the SGM hint, each pixel picks the smallest: pixels won by the identity
are left out of the photometric mean, pixels won by the hint are pulled towards the hint with
``log(|hint - D| + 1)``. Invalid hints (<= 0) carry a +1000 penalty so they never win.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from models.losses.photometric import tie_noise

__all__ = ["HINT_INVALID_PENALTY", "hint_reprojection_error", "hint_proxy_loss", "HintLoss",
           "depth_hint_loss"]

HINT_INVALID_PENALTY = 1000.0
HintVariant = Literal["depth_hints", "epcdepth"]


def hint_reprojection_error(error: Tensor, hint: Tensor) -> Tensor:
    """``error + 1000 (hint <= 0)``: photometric error (B, 1, H, W) of the hint warp, with
    pixels without a hint (B, 1, H, W) made unbeatable-by-design."""
    return error + HINT_INVALID_PENALTY * (hint <= 0).to(error.dtype)


def hint_proxy_loss(depth: Tensor, hint: Tensor, mask: Tensor, valid: Tensor | None = None) -> Tensor:
    """``sum(log(|hint - depth| + 1) mask [valid]) / (sum(mask) + 1e-7)`` (scalar).

    Args:
        depth: predicted depth (B, 1, H, W) at the hint's resolution (full resolution).
        mask: (B, 1, H, W) pixels where the hint won.
        valid: optional (B, 1, H, W) hint validity factor (Depth Hints multiplies it in, EPCDepth not).
    """
    loss = torch.log((hint - depth).abs() + 1) * mask
    if valid is not None:
        loss = loss * valid
    return loss.sum() / (mask.sum() + 1e-7)


class HintLoss(NamedTuple):
    """Terms of :func:`depth_hint_loss` for one scale.

    Attributes:
        reprojection: scalar, mean reprojection error over pixels not won by the identity.
        hint: scalar, proxy loss over pixels won by the hint (0 without hint).
        reprojection_mask: (B, 1, H, W) float, pixels kept for the reprojection mean.
        hint_mask: (B, 1, H, W) float, pixels won by the hint.
    """

    reprojection: Tensor
    hint: Tensor
    reprojection_mask: Tensor
    hint_mask: Tensor


def depth_hint_loss(reprojection: Tensor, identity: Tensor | None, hint_error: Tensor | None,
                    depth: Tensor, hint: Tensor | None, *, variant: HintVariant = "depth_hints",
                    noise_std: float = 1e-5, generator: torch.Generator | None = None) -> HintLoss:
    """The hint-selection loss of one scale.

    Args:
        reprojection: (B, N, H, W) errors of the N warped sources; the minimum over N is used.
        identity: (B, N, H, W) errors of the unwarped sources (min over N, plus tie noise), or
            None when auto-masking is disabled.
        hint_error: (B, 1, H, W) :func:`hint_reprojection_error` of the hint warp, or None.
        depth: (B, 1, H, W) predicted depth of this scale at full resolution.
        hint: (B, 1, H, W) hint depth (0 = none), or None.
        variant: "depth_hints" multiplies the proxy loss by ``hint > 0``; "epcdepth" does not (the
            +1000 penalty makes the two equal unless every candidate error exceeds 1000).
    Total loss of the scale: ``reprojection + hint`` (plus smoothness, added by the caller).
    """
    terms = [reprojection.min(1, keepdim=True)[0]]
    if identity is not None:
        ident = identity.min(1, keepdim=True)[0]
        terms.append(ident + tie_noise(ident, noise_std, generator))
    if hint_error is not None:
        terms.append(hint_error)
    idx = torch.argmin(torch.cat(terms, 1), dim=1, keepdim=True)
    dtype = reprojection.dtype
    if identity is not None:
        reproj_mask = (idx != 1).to(dtype)
        hint_mask = (idx == 2).to(dtype)
    else:
        reproj_mask = torch.ones_like(terms[0])
        hint_mask = (idx == 1).to(dtype)
    reproj = (terms[0] * reproj_mask).sum() / (reproj_mask.sum() + 1e-7)
    if hint_error is None or hint is None:
        return HintLoss(reproj, reproj.new_zeros(()), reproj_mask, torch.zeros_like(reproj_mask))
    valid = (hint > 0).to(dtype) if variant == "depth_hints" else None
    return HintLoss(reproj, hint_proxy_loss(depth, hint, hint_mask, valid), reproj_mask, hint_mask)
