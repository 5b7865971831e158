"""SGDepth's segmentation head and gradient scaling (Klingner et al., ECCV 2020), our own code.

* :func:`scale_gradient` (:class:`ScaleGradient`): identity in the forward pass, gradient times a
  factor in the backward pass. Applied once per task to the shared encoder's features it gives
  SGDepth's ``ScaledSplit``: the encoder receives ``s_depth * dL/df (depth) + s_seg * dL/df (seg)``
  while each decoder still gets its own unscaled gradient.
* :class:`SegmentationDecoder`: monodepth2's decoder layout (SGDepth decodes segmentation with the
  same blocks as depth) ending in a 3x3 conv to class logits at the input resolution, one scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.networks.depth_decoder import NUM_CH_DEC, Conv3x3, join_skip, upconv_blocks

__all__ = ["CITYSCAPES_CLASSES", "ScaleGradient", "SegmentationDecoder", "scale_gradient"]

CITYSCAPES_CLASSES = 19  # Cityscapes trainIds 0..18 (255 = ignore)


class ScaleGradient(torch.autograd.Function):
    """``y = x`` forward; ``dL/dx = scale * dL/dy`` backward (SGDepth's ``ScaleGrad``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = float(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged in value, its gradient multiplied by ``scale`` in the backward pass."""
    return ScaleGradient.apply(x, scale)


class SegmentationDecoder(nn.Module):
    """Decode 5 encoder feature maps into per-pixel class logits.

    For i = 4 … 0: ConvBlock -> x2 nearest upsampling -> concat the encoder skip (i > 0) ->
    ConvBlock (monodepth2's decoder, as SGDepth's segmentation branch); then a 3x3
    reflection-padded conv to ``n_classes`` logits (no activation).

    Args:
        num_ch_enc: channels of the encoder features (``ResnetEncoder.num_ch_enc``).
        n_classes: output classes (19 = Cityscapes trainIds; SGDepth's 20th "ignore" logit,
            whose loss weight is 0, is left out).
    Returns (forward):
        logits (B, n_classes, H, W) at the encoder's input resolution (2x the first feature map).
    """

    def __init__(self, num_ch_enc: Sequence[int], n_classes: int = CITYSCAPES_CLASSES) -> None:
        super().__init__()
        if len(num_ch_enc) != 5:
            raise ValueError(f"num_ch_enc must list 5 feature channels, got {list(num_ch_enc)}")
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes = n_classes
        self.upconv0, self.upconv1 = upconv_blocks(num_ch_enc)
        self.classifier = Conv3x3(NUM_CH_DEC[0], n_classes)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        x = features[-1]
        for k, i in enumerate(range(4, -1, -1)):
            x = F.interpolate(self.upconv0[k](x), scale_factor=2.0, mode="nearest")
            if i > 0:
                x = join_skip(x, features, i)
            x = self.upconv1[k](x)
        return self.classifier(x)
