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
from workflow_scripts.kitti.eigen_eval import post_process_disparity


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
