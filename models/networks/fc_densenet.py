"""FC-DenseNet57, the endoscopy reference's depth network (seed_methods §6.1).

Dense blocks (4, 4, 4, 4, 4) down and up, bottleneck 4 layers, growth rate 12, first conv 48.
DenseLayer = BN -> ReLU -> 3x3 conv (bias); TransitionDown = BN -> ReLU -> 1x1 conv -> max-pool 2;
TransitionUp = nearest x2 upsampling -> 3x3 conv (the reference's replacement of the transposed
conv), centre-crop to the skip, concat; up blocks return only their new features except the last;
final 1x1 conv, then ``abs()`` for a positive depth of arbitrary scale. No dropout. Input sides must
be multiples of 32 (5 poolings).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DenseLayer", "DenseBlock", "TransitionDown", "TransitionUp", "FCDenseNet", "fc_densenet57",
           "init_kaiming"]


class DenseLayer(nn.Sequential):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(cin))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(cin, growth, 3, padding=1, bias=True))


class DenseBlock(nn.Module):
    """``n_layers`` dense layers; returns input + new features, or only the new ones (``new_only``)."""

    def __init__(self, cin: int, growth: int, n_layers: int, new_only: bool = False) -> None:
        super().__init__()
        self.new_only = new_only
        self.layers = nn.ModuleList([DenseLayer(cin + i * growth, growth) for i in range(n_layers)])

    def forward(self, x: Tensor) -> Tensor:
        new = []
        for layer in self.layers:
            out = layer(x)
            x = torch.cat([x, out], 1)
            new.append(out)
        return torch.cat(new, 1) if self.new_only else x


class TransitionDown(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(channels))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(channels, channels, 1, bias=True))
        self.add_module("maxpool", nn.MaxPool2d(2))


class TransitionUp(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                nn.Conv2d(cin, cout, 3, padding=1))

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        out = self.up(x)
        h, w = skip.shape[-2:]
        top, left = (out.shape[-2] - h) // 2, (out.shape[-1] - w) // 2
        return torch.cat([out[:, :, top:top + h, left:left + w], skip], 1)


class FCDenseNet(nn.Module):
    """Fully convolutional DenseNet ("Tiramisu") regressing ``n_classes`` maps.

    Returns (forward): (B, n_classes, H, W), passed through ``abs`` when ``abs_output``.
    """

    def __init__(self, in_channels: int = 3, down_blocks: Sequence[int] = (4, 4, 4, 4, 4),
                 up_blocks: Sequence[int] = (4, 4, 4, 4, 4), bottleneck_layers: int = 4,
                 growth_rate: int = 12, out_chans_first_conv: int = 48, n_classes: int = 1,
                 abs_output: bool = True) -> None:
        super().__init__()
        if len(down_blocks) != len(up_blocks):
            raise ValueError("down_blocks and up_blocks must have the same length")
        self.abs_output = abs_output
        self.firstconv = nn.Conv2d(in_channels, out_chans_first_conv, 3, padding=1, bias=True)
        channels, skips = out_chans_first_conv, []
        self.down = nn.ModuleList()
        self.trans_down = nn.ModuleList()
        for n in down_blocks:
            self.down.append(DenseBlock(channels, growth_rate, n))
            channels += growth_rate * n
            skips.insert(0, channels)
            self.trans_down.append(TransitionDown(channels))
        self.bottleneck = DenseBlock(channels, growth_rate, bottleneck_layers, new_only=True)
        prev = growth_rate * bottleneck_layers
        self.trans_up = nn.ModuleList()
        self.up = nn.ModuleList()
        for i, n in enumerate(up_blocks):
            last = i == len(up_blocks) - 1
            self.trans_up.append(TransitionUp(prev, prev))
            channels = prev + skips[i]
            self.up.append(DenseBlock(channels, growth_rate, n, new_only=not last))
            prev = growth_rate * n
        self.final = nn.Conv2d(channels + prev, n_classes, 1, bias=True)
        self.divisor = 2 ** len(down_blocks)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-2] % self.divisor or x.shape[-1] % self.divisor:
            raise ValueError(f"input must be (B, C, H, W) with H, W multiples of {self.divisor}, "
                             f"got {tuple(x.shape)}")
        out = self.firstconv(x)
        skips = []
        for block, down in zip(self.down, self.trans_down, strict=True):
            out = block(out)
            skips.append(out)
            out = down(out)
        out = self.bottleneck(out)
        for up, block in zip(self.trans_up, self.up, strict=True):
            out = block(up(out, skips.pop()))
        out = self.final(out)
        return out.abs() if self.abs_output else out


def init_kaiming(model: nn.Module) -> nn.Module:
    """The reference's initialisation: Kaiming-normal (fan_in, relu) weights for every non-BN
    layer, BN weights 1, all biases 0."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    return model


def fc_densenet57(n_classes: int = 1, abs_output: bool = True, width: float = 1.0,
                  kaiming: bool = True) -> FCDenseNet:
    """FCDenseNet57 as trained by the endoscopy reference, with its Kaiming initialisation
    (``kaiming=False``: PyTorch's default one). ``width`` scales the growth rate (12) and the
    first conv (48) (1 = the reference)."""
    net = FCDenseNet(growth_rate=max(1, round(12 * width)), out_chans_first_conv=max(1, round(48 * width)),
                     n_classes=n_classes, abs_output=abs_output)
    return init_kaiming(net) if kaiming else net
