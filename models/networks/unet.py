"""The endoscopy reference's teacher U-Net (CARE 2018 schedule, seed_methods §6.2).

``UNet(in 3, out 1, depth=7, wf=3, padding=True, up_mode="upsample")``: blocks of two
(3x3 conv + ReLU), ``2^(wf+i)`` filters (8 … 512), average-pool down; up blocks = nearest x2
upsampling + 3x3 conv (``"upsample"``) or a 3x3 transposed conv (``"upconv"``), centre-cropped
skip concat, conv block; final 1x1 conv. Input sides must be multiples of ``2^(depth-1)`` (64).
The teacher's depth is the absolute value of the output (``abs_output``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UNet", "UNetConvBlock", "UNetUpBlock"]


def _activation(negative_slope: float) -> nn.Module:
    return nn.LeakyReLU(negative_slope) if negative_slope > 0 else nn.ReLU()


class UNetConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, padding: bool, negative_slope: float = 0.0) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=int(padding)), _activation(negative_slope),
                         nn.Conv2d(cout, cout, 3, padding=int(padding)), _activation(negative_slope))


class UNetUpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, up_mode: str, padding: bool,
                 negative_slope: float = 0.0) -> None:
        super().__init__()
        if up_mode == "upconv":
            self.up = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=int(padding),
                                         output_padding=int(padding))
        elif up_mode == "upsample":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                    nn.Conv2d(cin, cout, 3, padding=int(padding)))
        else:
            raise ValueError(f"up_mode must be 'upconv' or 'upsample', got {up_mode!r}")
        self.conv_block = UNetConvBlock(cin, cout, padding, negative_slope)

    def forward(self, x: Tensor, bridge: Tensor) -> Tensor:
        up = self.up(x)
        h, w = up.shape[-2:]
        top, left = (bridge.shape[-2] - h) // 2, (bridge.shape[-1] - w) // 2
        return self.conv_block(torch.cat([up, bridge[:, :, top:top + h, left:left + w]], 1))


class UNet(nn.Module):
    """U-Net (Ronneberger et al.) as modified by the endoscopy reference.

    ``negative_slope`` > 0 replaces every ReLU by a LeakyReLU of that slope (0 = the reference's
    ReLU), so that no unit's gradient can vanish for good (a "dead" last block gives a constant
    depth, which the depth-scaling layer makes gradient-free).

    Returns (forward): (B, out_channels, H, W), ``abs`` applied when ``abs_output``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, depth: int = 7, wf: int = 3,
                 padding: bool = True, up_mode: str = "upsample", abs_output: bool = True,
                 negative_slope: float = 0.0) -> None:
        super().__init__()
        self.depth = depth
        self.abs_output = abs_output
        self.down_path = nn.ModuleList()
        prev = in_channels
        for i in range(depth):
            self.down_path.append(UNetConvBlock(prev, 2 ** (wf + i), padding, negative_slope))
            prev = 2 ** (wf + i)
        self.up_path = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            self.up_path.append(UNetUpBlock(prev, 2 ** (wf + i), up_mode, padding, negative_slope))
            prev = 2 ** (wf + i)
        self.last = nn.Conv2d(prev, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        div = 2 ** (self.depth - 1)
        if x.dim() != 4 or x.shape[-2] % div or x.shape[-1] % div:
            raise ValueError(f"input must be (B, C, H, W) with H, W multiples of {div}, got {tuple(x.shape)}")
        blocks = []
        for i, down in enumerate(self.down_path):
            x = down(x)
            if i != len(self.down_path) - 1:
                blocks.append(x)
                x = F.avg_pool2d(x, 2)
        for i, up in enumerate(self.up_path):
            x = up(x, blocks[-i - 1])
        x = self.last(x)
        return x.abs() if self.abs_output else x
