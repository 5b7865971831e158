"""Photometric augmentation without torchvision (monodepth2's ColorJitter parameters).

One set of parameters is drawn per training item and applied to all of its frames, so the
frames stay photometrically consistent with each other; losses use the un-augmented images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_GRAY = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
# RGB <-> YIQ: hue is a rotation of the (I, Q) chroma plane
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


@dataclass(frozen=True)
class Jitter:
    """Colour-jitter factors; identity = (1, 1, 1, 0)."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0  # fraction of a full turn, monodepth2 draws it in [-0.1, 0.1]

    @classmethod
    def draw(cls, rng: np.random.Generator, strength: float = 0.2, hue: float = 0.1) -> Jitter:
        """Factors in [1 - strength, 1 + strength] and hue in [-hue, hue] (monodepth2: 0.2, 0.1)."""
        lo, hi = 1.0 - strength, 1.0 + strength
        return cls(float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)),
                   float(rng.uniform(-hue, hue)))


def color_jitter(img: Tensor, j: Jitter) -> Tensor:
    """Apply brightness, contrast, saturation and hue changes, in that order.

    Args:
        img: (..., 3, H, W) RGB in [0, 1].
    Returns:
        same shape, clamped to [0, 1].
    """
    out = img * j.brightness
    gray = (out * _GRAY.to(out)).sum(dim=-3, keepdim=True)
    out = (out - gray.mean(dim=(-2, -1), keepdim=True)) * j.contrast + gray.mean(dim=(-2, -1), keepdim=True)
    gray = (out * _GRAY.to(out)).sum(dim=-3, keepdim=True)
    out = gray + (out - gray) * j.saturation
    if j.hue:
        a = 2 * np.pi * j.hue
        rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]],
                           dtype=torch.float32)
        m = (_YIQ2RGB @ rot @ _RGB2YIQ).to(out)
        out = torch.einsum("ij,...jhw->...ihw", m, out)
    return out.clamp(0.0, 1.0)
