"""EPCDepth's data grafting and self-distillation (seed_methods §6.7).

Data grafting is a batch augmentation: the bottom rows (from row ``g``) of every sample are
replaced by those of another sample taken from the same camera side, and with probability 1/2
every image is then rolled up by ``g`` rows. EPCDepth grafts the tensors whose keys contain
"curr" or "other_side" and the "depth_hint"; the caller passes exactly those. QUIRK kept: the
grouping is by side only, so a horizontally flipped sample (baseline sign flipped) can be
grafted onto an unflipped one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["graft", "data_graft", "self_distillation_loss"]


def graft(batch: Mapping[str, Tensor], side: Tensor, rows: int, perms: Mapping[int, Tensor],
          roll: bool) -> dict[str, Tensor]:
    """Deterministic core of :func:`data_graft`.

    Args:
        batch: name -> (B, C, H, W) tensors to graft (new tensors are returned).
        side: (B,) camera of each sample (EPCDepth: 2 = left, 3 = right).
        rows: first grafted row ``g`` (0 = nothing to do).
        perms: side value -> permutation of the samples of that side (in batch order).
        roll: roll every image up by ``rows`` after grafting.
    """
    if rows == 0:
        return dict(batch)
    out = {}
    for name, x in batch.items():
        y = x.clone()
        for s, perm in perms.items():
            sel = side == s
            y[sel, :, rows:] = x[sel][perm, :, rows:]
        out[name] = torch.roll(y, shifts=-rows, dims=2) if roll else y
    return out


def data_graft(batch: Mapping[str, Tensor], side: Tensor,
               generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """EPCDepth's ``data_graft``: ``g = int(k / 5 * H)`` with ``k`` uniform in {0, …, 4} (nothing
    happens when ``g = 0``), a random permutation per side, a roll with probability 1/2."""
    h = next(iter(batch.values())).shape[2]
    k = int(torch.randint(0, 5, (1,), generator=generator))
    rows = int(k / 5 * h)
    sides = [int(s) for s in torch.unique(side)]
    perms = {s: torch.randperm(int((side == s).sum()), generator=generator).to(side.device) for s in sides}
    roll = bool(torch.rand((), generator=generator) < 0.5)
    return graft(batch, side, rows, perms, roll)


def self_distillation_loss(disps: Sequence[Tensor], errors: Sequence[Tensor], split: int = 5) -> Tensor:
    """EPCDepth's ``spp_distillate``: per pixel, the disparity of the scale with the smallest
    reprojection error becomes the (detached) target of every scale of its group.

    Args:
        disps: sigmoid disparities (B, 1, H, W) of all scales, upsampled to full resolution, in
            the decoder's order (decoder scales first, then encoder scales).
        errors: reprojection errors (B, 1, H, W) of the same scales (stereo warp vs target).
        split: index of the first encoder-side scale (groups ``[0, split)`` and ``[split, n)``).
    Returns:
        ``mean_s mean_pixels log(|best_group(s) - disp_s| + 1)``.
    """
    if len(disps) != len(errors):
        raise ValueError(f"{len(disps)} disparities but {len(errors)} error maps")
    with torch.no_grad():
        best: list[Tensor] = []
        for start, stop in ((0, min(split, len(disps))), (split, len(disps))):
            if start >= stop:
                continue
            b, e = disps[start], errors[start]
            for s in range(start + 1, stop):
                b = torch.where(errors[s] < e, disps[s], b)
                e = torch.minimum(errors[s], e)
            best.append(b)
    losses = [torch.log((best[0 if s < split else 1] - d).abs() + 1).mean() for s, d in enumerate(disps)]
    return torch.stack(losses).mean()
