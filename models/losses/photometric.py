"""Photometric losses: SSIM, the 0.85 SSIM + 0.15 L1 error, per-pixel minimum reprojection with
auto-masking (monodepth2, seed_methods §6.4.3; SC-Depth's 7x7 variant §6.6).

All maps are (B, C, H, W) images in [0, 1]; per-pixel errors are (B, 1, H, W).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SSIM_C1", "SSIM_C2", "ssim_loss_map", "photometric_error", "MinReprojection",
           "min_reprojection_loss", "tie_noise"]

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def ssim_loss_map(x: Tensor, y: Tensor, window: int = 3) -> Tensor:
    """Per-pixel, per-channel SSIM dissimilarity ``clamp((1 - SSIM) / 2, 0, 1)`` (B, C, H, W).

    Local statistics are ``window x window`` box means over a reflection-padded image
    (monodepth2: 3, SC-Depth: 7), ``C1 = 0.01^2``, ``C2 = 0.03^2``.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"x and y must be (B, C, H, W) of one shape, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if window % 2 != 1:
        raise ValueError(f"window must be odd, got {window}")
    pad = window // 2
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, window, stride=1)

    mu_x, mu_y = mean(x), mean(y)
    sigma_x = mean(x * x) - mu_x**2
    sigma_y = mean(y * y) - mu_y**2
    sigma_xy = mean(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def photometric_error(pred: Tensor, target: Tensor, alpha: float = 0.85, ssim_window: int = 3,
                      clamp_l1: bool = False) -> Tensor:
    """``alpha mean_c(SSIM loss) + (1 - alpha) mean_c |pred - target|`` (B, 1, H, W).

    Args:
        alpha: 0.85 in every reference; 0 gives monodepth2's ``--no_ssim`` L1.
        ssim_window: 3 (monodepth2, Depth Hints, EPCDepth) or 7 (SC-Depth).
        clamp_l1: clamp ``|pred - target|`` to [0, 1] first (SC-Depth).
    """
    l1 = (pred - target).abs()
    if clamp_l1:
        l1 = l1.clamp(0, 1)
    err = (1 - alpha) * l1.mean(1, keepdim=True)
    if alpha > 0:
        err = err + alpha * ssim_loss_map(pred, target, ssim_window).mean(1, keepdim=True)
    return err


def tie_noise(like: Tensor, std: float = 1e-5, generator: torch.Generator | None = None) -> Tensor:
    """monodepth2's ``randn * 1e-5`` added to identity losses to break ties with the warp losses."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device) * std


class MinReprojection(NamedTuple):
    """Result of :func:`min_reprojection_loss`.

    Attributes:
        loss: scalar, mean over all pixels of ``per_pixel``.
        per_pixel: (B, 1, H, W) the minimum that is optimised.
        automask: (B, 1, H, W) bool, True where a warped source wins (monodepth2's
            "identity_selection" output), False where an unwarped source wins (static pixel).
    """

    loss: Tensor
    per_pixel: Tensor
    automask: Tensor


def min_reprojection_loss(reprojection: Tensor, identity: Tensor | None = None, *, average: bool = False,
                          noise_std: float = 1e-5,
                          generator: torch.Generator | None = None) -> MinReprojection:
    """monodepth2's per-pixel minimum reprojection with auto-masking.

    Args:
        reprojection: (B, N, H, W) photometric errors of the N warped source frames.
        identity: (B, N, H, W) errors of the unwarped sources (auto-masking), or None
            (``--disable_automasking``); ``noise_std * N(0, 1)`` is added to break ties.
        average: average over the N sources instead of the minimum (``--avg_reprojection``).
    """
    reproj = reprojection.mean(1, keepdim=True) if average else reprojection
    if identity is None:
        combined = reproj
        n_identity = 0
    else:
        ident = identity.mean(1, keepdim=True) if average else identity
        ident = ident + tie_noise(ident, noise_std, generator)
        combined = torch.cat([ident, reproj], 1)
        n_identity = ident.shape[1]
    per_pixel, idx = torch.min(combined, dim=1, keepdim=True)
    return MinReprojection(per_pixel.mean(), per_pixel, idx >= n_identity)
