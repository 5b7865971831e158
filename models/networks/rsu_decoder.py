"""EPCDepth's RSU decoder (U^2-Net residual U-blocks) with the full-scale output option (§6.7).

Decoder stages on ResNet features ``f0`` (1/2) … ``f4`` (1/32), channels 256, 128, 64, 32, 16:
``d5 = RSU3(up(f4) ++ f3)``, ``d4 = RSU4(up(d5) ++ f2)``, ``d3 = RSU5(up(d4) ++ f1)``,
``d2 = RSU6(up(d3) ++ f0)``, ``d1 = RSU7(up(d2))`` (nearest x2 ``up``); each gives a sigmoid
disparity through a reflection-padded 3x3 conv. With ``use_encoder_disp`` (EPCDepth's
``--use_full_scale``) every encoder feature also gets an RSU bottleneck + disparity head.
Output order as EPCDepth: ``[d1 (finest) … d5, e4 … e0]`` (10 maps; 5 without encoder heads).
Each map is at its own resolution; :func:`full_resolution` upsamples them for the loss.
Module names follow EPCDepth's (``stage5d``, ``rebnconvin``, ``disps`` …).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvElu", "RSU", "EncoderDisp", "RSUDecoder", "full_resolution"]

DECODER_CHANNELS = (256, 128, 64, 32, 16)


class ConvElu(nn.Module):
    """3x3 reflection-padded (dilated) convolution + ELU (EPCDepth's decoder-side RSU layer)."""

    def __init__(self, cin: int, cout: int, dirate: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(cin, cout, 3, padding=dirate, dilation=dirate, padding_mode="reflect")
        self.elu = nn.ELU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.elu(self.conv_s1(x))


class RSU(nn.Module):
    """Residual U-block of height ``levels`` (RSU-3 … RSU-7): ``levels - 2`` max-poolings
    (ceil mode), a dilation-2 conv at the bottom, bilinear upsampling on the way up, and the
    input conv's output added at the end."""

    def __init__(self, levels: int, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        if levels < 3:
            raise ValueError("an RSU block needs at least 3 levels")
        self.levels = levels
        self.rebnconvin = ConvElu(cin, cout)
        self.rebnconv1 = ConvElu(cout, mid)
        for k in range(2, levels):
            setattr(self, f"rebnconv{k}", ConvElu(mid, mid))
        setattr(self, f"rebnconv{levels}", ConvElu(mid, mid, dirate=2))
        for k in range(levels - 1, 0, -1):
            setattr(self, f"rebnconv{k}d", ConvElu(2 * mid, cout if k == 1 else mid))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        hxin = self.rebnconvin(x)
        enc = [self.rebnconv1(hxin)]
        for k in range(2, self.levels):
            enc.append(getattr(self, f"rebnconv{k}")(self.pool(enc[-1])))
        bottom = getattr(self, f"rebnconv{self.levels}")(enc[-1])
        d = getattr(self, f"rebnconv{self.levels - 1}d")(torch.cat([bottom, enc[-1]], 1))
        for k in range(self.levels - 2, 0, -1):
            skip = enc[k - 1]
            up = F.interpolate(d, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            d = getattr(self, f"rebnconv{k}d")(torch.cat([up, skip], 1))
        return d + hxin


def _disp_head(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, padding_mode="reflect"), nn.Sigmoid())


class EncoderDisp(nn.Module):
    """RSU bottleneck on one encoder feature map + sigmoid disparity head."""

    def __init__(self, bott_channels: int, cout: int, bottleneck: RSU) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        self.disp = _disp_head(bott_channels, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.disp(self.bottleneck(x))


class RSUDecoder(nn.Module):
    """EPCDepth's depth decoder.

    Args:
        num_ch_enc: channels of the 5 encoder features (``ResnetEncoder.num_ch_enc``).
        use_encoder_disp: add the 5 encoder-side disparities (full-scale training).
    Input sides must be multiples of 32 and at least 96 (160 with encoder heads): the dilated
    reflection-padded convs at the bottom of the RSU blocks need 3 pixels.
    """

    def __init__(self, num_ch_enc: Sequence[int], num_output_channels: int = 1,
                 use_encoder_disp: bool = True) -> None:
        super().__init__()
        enc, dec = list(num_ch_enc), DECODER_CHANNELS
        self.use_encoder_disp = use_encoder_disp
        self.min_size = 160 if use_encoder_disp else 96
        self.stage5d = RSU(3, enc[4] + enc[3], 64, dec[0])
        self.stage4d = RSU(4, dec[0] + enc[2], 32, dec[1])
        self.stage3d = RSU(5, dec[1] + enc[1], 16, dec[2])
        self.stage2d = RSU(6, dec[2] + enc[0], 8, dec[3])
        self.stage1d = RSU(7, dec[3], 4, dec[4])
        if use_encoder_disp:
            self.encoder_disps = nn.ModuleList(
                EncoderDisp(bott, num_output_channels, RSU(levels, c, mid, bott))
                for c, mid, bott, levels in zip(enc, (32, 32, 64, 128, 256), (64, 64, 128, 256, 512),
                                                (7, 6, 5, 4, 3), strict=True))
        self.disps = nn.ModuleList(_disp_head(c, num_output_channels) for c in dec)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        f = list(features)
        h, w = f[0].shape[-2] * 2, f[0].shape[-1] * 2
        if h % 32 or w % 32 or min(h, w) < self.min_size:
            raise ValueError(f"RSUDecoder needs input sides that are multiples of 32 and >= {self.min_size}, "
                             f"got {h}x{w}")

        def up(x: Tensor) -> Tensor:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")

        d5 = self.stage5d(torch.cat([up(f[4]), f[3]], 1))
        d4 = self.stage4d(torch.cat([up(d5), f[2]], 1))
        d3 = self.stage3d(torch.cat([up(d4), f[1]], 1))
        d2 = self.stage2d(torch.cat([up(d3), f[0]], 1))
        d1 = self.stage1d(up(d2))
        disps = [head(x) for head, x in zip(self.disps, (d5, d4, d3, d2, d1), strict=True)]
        if self.use_encoder_disp:
            disps = [head(x) for head, x in zip(self.encoder_disps, f, strict=True)] + disps
        return disps[::-1]


def full_resolution(disps: Sequence[Tensor], hw: tuple[int, int]) -> list[Tensor]:
    """Bilinearly upsample every disparity map to ``hw`` (EPCDepth's full-scale loss input)."""
    return [F.interpolate(d, size=hw, mode="bilinear", align_corners=False) for d in disps]
