"""ResNet-18/50 feature encoder (monodepth2's ResnetEncoder, seed_methods §6.4.2), our own code.

The backbone keeps torchvision's module names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` …), so an ImageNet state dict saved from torchvision
(``torchvision.models.resnet18(weights=...).state_dict()``, 122 keys; 320 for ResNet-50) loads
with :func:`load_torchvision_weights`. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from models.errors import InputDataError

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "ResnetEncoder", "load_torchvision_weights"]

_LAYERS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(cin, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 - 3x3 (strided, torchvision's "v1.5") - 1x1 bottleneck block (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, out, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """ResNet backbone without the classifier, torchvision module names, ``3 * num_input_images``
    input channels; initialised as torchvision (Kaiming fan-out for convs, BN = (1, 0))."""

    def __init__(self, num_layers: int = 18, num_input_images: int = 1) -> None:
        super().__init__()
        if num_layers not in _LAYERS:
            raise ValueError(f"num_layers must be one of {sorted(_LAYERS)}, got {num_layers}")
        block = BasicBlock if num_layers < 50 else Bottleneck
        self.conv1 = nn.Conv2d(3 * num_input_images, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), _LAYERS[num_layers], strict=True)):
            blocks = []
            for k in range(n):
                blocks.append(block(cin, planes, stride=2 if (k == 0 and i > 0) else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def load_torchvision_weights(model: ResNet, path: str | Path, num_input_images: int = 1) -> None:
    """Load an ImageNet ResNet state dict in torchvision's key layout into ``model``.

    The classifier (``fc.*``) is dropped. With several input images, ``conv1.weight`` is
    repeated along the input channels and divided by ``num_input_images`` (monodepth2).

    Raises:
        InputDataError: the file is missing, not a tensor state dict, or its keys/shapes do not
            match the architecture.
    """
    path = Path(path)
    fix = ("give a state dict saved from torchvision's resnet18/resnet50 "
           "(torch.save(model.state_dict(), path)) matching encoder num_layers")
    if not path.is_file():
        raise InputDataError(path, "ImageNet weights file not found", fix)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise InputDataError(path, f"cannot be read as a torch state dict ({err})", fix) from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputDataError(path, "is not a state dict of tensors", fix)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if "conv1.weight" in state and num_input_images > 1:
        w = state["conv1.weight"]
        state["conv1.weight"] = torch.cat([w] * num_input_images, 1) / num_input_images
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise InputDataError(path, f"keys do not match a torchvision ResNet with {len(own)} tensors: "
                                   f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                                   f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}", fix)
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
           for k in own if state[k].shape != own[k].shape]
    if bad:
        raise InputDataError(path, f"tensor shapes do not match: {bad[:3]}", fix)
    model.load_state_dict(state)


class ResnetEncoder(nn.Module):
    """Multi-scale ResNet features of an image (or of ``num_input_images`` stacked images).

    Input ``(B, 3 n, H, W)`` in [0, 1], normalised inside as ``(x - 0.45) / 0.225``. Output: 5
    feature maps at 1/2, 1/4, 1/8, 1/16, 1/32 of the input with ``num_ch_enc`` channels
    (``[64, 64, 128, 256, 512]``; layers 1-4 x4 for ResNet-50).

    Args:
        weights_path: optional torchvision-layout ImageNet state dict (see module docstring).
    """

    def __init__(self, num_layers: int = 18, num_input_images: int = 1,
                 weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.encoder = ResNet(num_layers, num_input_images)
        mult = 4 if num_layers >= 50 else 1
        self.num_ch_enc = [64, 64 * mult, 128 * mult, 256 * mult, 512 * mult]
        self.num_input_images = num_input_images
        if weights_path is not None:
            load_torchvision_weights(self.encoder, weights_path, num_input_images)

    def forward(self, image: Tensor) -> list[Tensor]:
        if image.dim() != 4 or image.shape[1] != 3 * self.num_input_images:
            raise ValueError(f"image must be (B, {3 * self.num_input_images}, H, W), "
                             f"got {tuple(image.shape)}")
        e = self.encoder
        x = (image - 0.45) / 0.225
        f0 = e.relu(e.bn1(e.conv1(x)))
        f1 = e.layer1(e.maxpool(f0))
        f2 = e.layer2(f1)
        f3 = e.layer3(f2)
        return [f0, f1, f2, f3, e.layer4(f3)]
