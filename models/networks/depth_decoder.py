"""monodepth2's depth decoder (seed_methods §6.4.2): multi-scale sigmoid disparities.

For i = 4 … 0: ConvBlock (3x3 reflection-padded conv + ELU) -> x2 upsampling -> concat the
encoder skip (i > 0) -> ConvBlock; at the requested scales a 3x3 conv + sigmoid gives the
disparity. ``upsample_mode="bilinear"`` gives SC-Depth's variant (its DepthNet upsamples
bilinearly and uses only scale 0, turned into depth by ``geometry.sc_depth_from_disp``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Conv3x3", "ConvBlock", "DepthDecoder", "join_skip", "upconv_blocks"]

NUM_CH_DEC = (16, 32, 64, 128, 256)


class Conv3x3(nn.Module):
    """3x3 convolution with reflection padding (keeps the size)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(cin, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """:class:`Conv3x3` followed by ELU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = Conv3x3(cin, cout)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlin(self.conv(x))


def upconv_blocks(num_ch_enc: Sequence[int], use_skips: bool = True) -> tuple[nn.ModuleList, nn.ModuleList]:
    """monodepth2's decoder trunk for levels i = 4 ... 0: ``upconv0[k]`` before the x2 upsampling,
    ``upconv1[k]`` after it (on the upsampled map plus, with skips, encoder feature i - 1)."""
    upconv0, upconv1 = nn.ModuleList(), nn.ModuleList()
    for i in range(4, -1, -1):
        cin = num_ch_enc[-1] if i == 4 else NUM_CH_DEC[i + 1]
        upconv0.append(ConvBlock(cin, NUM_CH_DEC[i]))
        cin = NUM_CH_DEC[i] + (num_ch_enc[i - 1] if use_skips and i > 0 else 0)
        upconv1.append(ConvBlock(cin, NUM_CH_DEC[i]))
    return upconv0, upconv1


def join_skip(x: Tensor, features: Sequence[Tensor], i: int) -> Tensor:
    """The upsampled map ``x`` with encoder feature ``i - 1`` concatenated (channels); a clear error
    when the sizes differ (an input whose sides are not multiples of 32)."""
    if x.shape[-2:] != features[i - 1].shape[-2:]:
        sizes = [tuple(f.shape[-2:]) for f in features]
        raise ValueError("encoder features do not halve exactly: the input height and width "
                         f"must be multiples of 32 (feature sizes {sizes})")
    return torch.cat([x, features[i - 1]], 1)


class DepthDecoder(nn.Module):
    """Decode 5 encoder feature maps into sigmoid disparities.

    Args:
        num_ch_enc: channels of the encoder features (``ResnetEncoder.num_ch_enc``).
        scales: output scales; scale s has resolution 1/2^s of the encoder input.
        upsample_mode: "nearest" (monodepth2) or "bilinear" (SC-Depth).
    Returns (forward):
        list of disparities (B, C_out, H/2^s, W/2^s) in (0, 1), one per entry of ``scales`` in
        that order (default: finest first).
    """

    def __init__(self, num_ch_enc: Sequence[int], scales: Sequence[int] = (0, 1, 2, 3),
                 num_output_channels: int = 1, use_skips: bool = True,
                 upsample_mode: str = "nearest") -> None:
        super().__init__()
        if len(num_ch_enc) != 5:
            raise ValueError(f"num_ch_enc must list 5 feature channels, got {list(num_ch_enc)}")
        if not set(scales) <= set(range(4)):
            raise ValueError(f"scales must be within 0..3, got {list(scales)}")
        self.scales = tuple(scales)
        self.use_skips = use_skips
        self.upsample_mode = upsample_mode
        self.upconv0, self.upconv1 = upconv_blocks(num_ch_enc, use_skips)
        self.dispconv = nn.ModuleDict({str(s): Conv3x3(NUM_CH_DEC[s], num_output_channels)
                                       for s in self.scales})

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        x = features[-1]
        out: dict[int, Tensor] = {}
        for k, i in enumerate(range(4, -1, -1)):
            x = self.upconv0[k](x)
            x = F.interpolate(x, scale_factor=2.0, mode=self.upsample_mode,
                              align_corners=False if self.upsample_mode == "bilinear" else None)
            if self.use_skips and i > 0:
                x = join_skip(x, features, i)
            x = self.upconv1[k](x)
            if i in self.scales:
                out[i] = torch.sigmoid(self.dispconv[str(i)](x))
        return [out[s] for s in self.scales]
