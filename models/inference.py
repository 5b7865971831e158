"""Prediction with a trained depth network (monodepth2's ``evaluate_depth.py`` output format).

Disparities are the network's finest-scale sigmoid output mapped by ``disp_to_depth``
(``1/max + (1/min - 1/max) sigmoid``), i.e. the "scaled disparity" monodepth2 saves and
evaluates; optional flip post-processing blends the prediction of the mirrored image.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor, nn

from models import geometry as G


def post_process_disparity(disp: np.ndarray, disp_flipped: np.ndarray) -> np.ndarray:
    """monodepth2's flip post-processing.

    Args:
        disp: (N, H, W) disparity of the images; disp_flipped: (N, H, W) disparity predicted
            for the horizontally flipped images (NOT flipped back).
    Returns:
        (N, H, W): the two blended, each side's border taken from the prediction that saw it.
    """
    _, h, w = disp.shape
    r = disp_flipped[:, :, ::-1]
    m = 0.5 * (disp + r)
    grid = np.linspace(0.0, 1.0, w)[None, :].repeat(h, 0)
    l_mask = (1.0 - np.clip(20.0 * (grid - 0.05), 0.0, 1.0))[None]
    r_mask = l_mask[:, :, ::-1]
    return r_mask * disp + l_mask * r + (1.0 - l_mask - r_mask) * m


@torch.no_grad()
def predict_disparity(net: nn.Module, images: Tensor, *, min_depth: float = 0.1, max_depth: float = 100.0,
                      post_process: bool = False, kind: str = "disp") -> Tensor:
    """Scaled disparity (B, H, W) of images (B, 3, H, W) in [0, 1] at the training size.

    Args:
        kind: "disp" for networks with sigmoid disparity outputs (ResNet decoders, UNet
            trained as disparity), "depth" for networks that output positive depth directly
            (FC-DenseNet57 of the endoscopy reference): the disparity is then 1 / depth.
        post_process: monodepth2's flip post-processing (two forward passes).
    """
    def run(x: Tensor) -> Tensor:
        out = net(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        if kind == "depth":
            return 1.0 / out.clamp(min=1e-6)
        return G.disp_to_depth(out, min_depth, max_depth)[0]

    disp = run(images)[:, 0]
    if post_process:
        flipped = run(images.flip(-1))[:, 0]
        disp = torch.from_numpy(post_process_disparity(disp.cpu().numpy(), flipped.cpu().numpy())).to(disp)
    return disp


def predict_batches(net: nn.Module, batches: Iterable[Tensor], device: torch.device, **kwargs) -> np.ndarray:
    """Disparities (N, H, W) float32 of every image of an iterable of (B, 3, H, W) batches."""
    net.to(device).eval()
    out = [predict_disparity(net, b.to(device), **kwargs).float().cpu().numpy() for b in batches]
    return np.concatenate(out).astype(np.float32)


@torch.no_grad()
def predict_endo_raw(net: nn.Module, colors: Tensor, mask: Tensor, device: torch.device,
                     batch_size: int = 8) -> Tensor:
    """Raw (unscaled) depth (N, H, W) of endoscopy frames (N, 3, H, W) in [0, 1] with the
    boundary mask (1, H, W), fed as in training (``(2 x - 1) * mask``)."""
    from models.training.endo_objectives import network_input

    net.to(device).eval()
    out = []
    for s in range(0, len(colors), batch_size):
        x = colors[s:s + batch_size].to(device)
        y = net(network_input(x, mask.to(device).expand(len(x), -1, -1, -1)))
        out.append((y[0] if isinstance(y, (list, tuple)) else y)[:, 0].float().cpu())
    return torch.cat(out)


def endo_depth_in_sfm_units(raw: Tensor, sparse_depth: Tensor, sparse_mask: Tensor, valid: Tensor,
                            global_scale: float) -> tuple[Tensor, Tensor]:
    """Per-frame scale recovery of raw depths with the reference's depth-scaling layer, in SfM units.

    Args:
        raw: (N, H, W) network depth at the network size, arbitrary scale.
        sparse_depth, sparse_mask: (N, H, W) SfM sparse depth / global_scale and its mask.
        valid: (H, W) {0, 1} field of view; depth is 0 outside.
    Returns:
        depth (N, H, W) in SfM world units (scaled x global_scale) and the per-frame scales (N,)
        (frames without sparse samples take the median scale of the others).
    """
    depth = raw[:, None].double()
    sd, sm = sparse_depth[:, None].double(), sparse_mask[:, None].double()
    has = sm.flatten(1).sum(1) > 0
    scaled, _ = G.scale_to_sparse_depth(depth, torch.where(has[:, None, None, None], sd, torch.ones_like(sd)),
                                        torch.where(has[:, None, None, None], sm, torch.ones_like(sm)))
    scales = (scaled.flatten(1).sum(1) / depth.flatten(1).sum(1).clamp(min=1e-12))
    if has.any() and not has.all():
        scales = torch.where(has, scales, scales[has].median())
    elif not has.any():
        raise ValueError("no frame has sparse SfM samples: cannot recover the scale")
    out = depth[:, 0] * scales[:, None, None] * global_scale * valid.double()
    return out.float(), scales * global_scale
