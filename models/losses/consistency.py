"""SC-Depth's losses (seed_methods §6.6): geometry consistency, self-discovered mask, pairwise
photometric terms with auto-mask and min-optimisation over the reference views.

For each (target, reference) pair in both directions, :func:`sc_pairwise_terms` warps the
reference into the target with the target depth and compares the reference depth sampled there
(``projected``) with the target points' depth in the reference camera (``computed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from models.geometry import SampleConvention, sample, warp
from models.losses.photometric import ssim_loss_map

__all__ = ["geometry_consistency", "self_discovered_mask", "PairTerms", "sc_pairwise_terms", "mean_on_mask",
           "sc_depth_losses"]


def geometry_consistency(computed: Tensor, projected: Tensor) -> Tensor:
    """``D_diff = |computed - projected| / (computed + projected)`` in [0, 1] for positive depths."""
    return (computed - projected).abs() / (computed + projected)


def self_discovered_mask(depth_diff: Tensor) -> Tensor:
    """``M = 1 - D_diff`` (detached): weights down inconsistent (moving, occluded) pixels."""
    return (1 - depth_diff).detach()


class PairTerms(NamedTuple):
    """Per-pixel maps (B, 1, H, W) of one directed pair.

    Attributes:
        photo: ``mean_c(0.15 clamp|I - I'|, 0, 1) + 0.85 SSIM7)``, times the self-discovered mask.
        color: ``mean_c |I - I'|``, used to pick the best view.
        depth_diff: geometry consistency ``D_diff``.
        valid: float mask: non-black warped and target pixels (and the auto-mask).
    """

    photo: Tensor
    color: Tensor
    depth_diff: Tensor
    valid: Tensor


def sc_pairwise_terms(tgt_img: Tensor, ref_img: Tensor, tgt_depth: Tensor, ref_depth: Tensor, K: Tensor,
                      ref_from_tgt: Tensor, *, auto_mask: bool = True, dynamic_mask: bool = True,
                      use_ssim: bool = True, convention: SampleConvention = "exact") -> PairTerms:
    """SC-Depth's ``compute_pairwise_loss`` for one direction (zeros padding, 7x7 SSIM).

    Args:
        tgt_img, ref_img: (B, 3, H, W) images in [0, 1].
        tgt_depth, ref_depth: (B, 1, H, W) depths.
        ref_from_tgt: (B, 4, 4) pose of the target camera in the reference camera frame.
        convention: "monodepth2" reproduces SC-Depth's half-pixel sampling quirk.
    """
    w = warp(ref_img, tgt_depth, K, ref_from_tgt, convention=convention, padding_mode="zeros")
    projected = sample(ref_depth, w.pixels, convention, padding_mode="zeros")
    depth_diff = geometry_consistency(w.depth, projected)
    valid = ((w.image.abs().mean(1, keepdim=True) > 1e-3) & (tgt_img.abs().mean(1, keepdim=True) > 1e-3))
    color = (tgt_img - w.image).abs().mean(1, keepdim=True)
    if auto_mask:
        valid = valid & (color < (tgt_img - ref_img).abs().mean(1, keepdim=True))
    diff = (tgt_img - w.image).abs().clamp(0, 1)
    if use_ssim:
        diff = 0.15 * diff + 0.85 * ssim_loss_map(tgt_img, w.image, window=7)
    photo = diff.mean(1, keepdim=True)
    if dynamic_mask:
        photo = photo * self_discovered_mask(depth_diff)
    return PairTerms(photo, color, depth_diff, valid.to(tgt_img.dtype))


def mean_on_mask(x: Tensor, mask: Tensor, min_pixels: int = 100) -> Tensor:
    """``sum(x mask) / sum(mask)``, or 0 when the mask holds ``min_pixels`` or fewer pixels."""
    mask = mask.expand_as(x)
    if mask.sum() > min_pixels:
        return (x * mask).sum() / mask.sum()
    return x.new_zeros(())


def sc_depth_losses(terms: Sequence[PairTerms], min_optimize: bool = True) -> tuple[Tensor, Tensor]:
    """(photometric loss, geometry loss) over all directed pairs of a sample.

    With ``min_optimize`` each pixel keeps the pair with the smallest colour difference
    (``argmin`` of ``color``), as SC-Depth; otherwise all pairs are averaged on their masks.
    """
    photo = torch.cat([t.photo for t in terms], 1)
    depth_diff = torch.cat([t.depth_diff for t in terms], 1)
    valid = torch.cat([t.valid for t in terms], 1)
    if min_optimize:
        idx = torch.argmin(torch.cat([t.color for t in terms], 1), dim=1, keepdim=True)
        photo, depth_diff, valid = (torch.gather(x, 1, idx) for x in (photo, depth_diff, valid))
    return mean_on_mask(photo, valid), mean_on_mask(depth_diff, valid)
