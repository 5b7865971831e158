"""Which depth or pose network to build: a small, documented spec saved inside ``model.pt``.

The fields carry their documentation in ``metadata["doc"]``: the workflow's configuration uses
:class:`NetworkSpec` directly as the ``network`` section of a training stage (the
documentation convention of ``workflow_scripts.config``; nothing here reads a config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from models.networks.depth_net import DepthNet
from models.networks.fc_densenet import fc_densenet57
from models.networks.pose_net import PoseNet
from models.networks.unet import UNet

__all__ = ["NetworkSpec", "build_pose_net"]


def _doc(default: object, doc: str, **schema: object):
    return field(default=default, metadata={"doc": doc, "schema": schema})


@dataclass(frozen=True, kw_only=True)
class NetworkSpec:
    """A depth network: "resnet" (ResNet encoder + decoder, see DepthNet), "unet" (the endoscopy
    teacher) or "fc_densenet57" (the endoscopy student)."""

    kind: Literal["resnet", "unet", "fc_densenet57"] = _doc(
        "resnet",
        "Network: resnet (encoder_layers + decoder), unet (the endoscopy teacher) or "
        "fc_densenet57 (the endoscopy student).",
    )
    encoder_layers: Literal[18, 50] = _doc(18, "ResNet depth of the encoder (kind resnet).")
    decoder: Literal["monodepth2", "sc_depth", "rsu", "rsu_full"] = _doc(
        "monodepth2",
        "Decoder (kind resnet): monodepth2 (4 scales), sc_depth (scale 0, bilinear), rsu or "
        "rsu_full (EPCDepth's RSU decoder; rsu_full adds the encoder-side full-scale outputs).",
    )
    weights: str | None = _doc(
        None,
        "A local ImageNet state dict in torchvision's key layout for the encoder (nothing is "
        "downloaded); null = random initialisation.",
    )
    width: float = _doc(
        1.0,
        "Channel multiplier of the endoscopy networks, keeping their layout (1 = the reference's; "
        "0.5 = UNet filters 4 ... 256 and FC-DenseNet growth 6; for the UNet a power of two).",
        exclusiveMinimum=0,
    )
    init: Literal["kaiming", "default"] = _doc(
        "kaiming",
        "Initialisation of the FC-DenseNet57: kaiming (the reference's Kaiming-normal) or "
        "default (PyTorch's, whose smaller outputs a short distillation fits far sooner).",
    )
    negative_slope: float = _doc(
        0.0,
        "Kind unet: the slope of LeakyReLU activations in place of the reference's ReLU (0 = ReLU). "
        "A small slope (0.01) keeps a short, fast-learning run from losing its last block's "
        "units for good.",
        minimum=0,
    )
    segmentation: int = _doc(
        0,
        "Classes of a segmentation head on the shared encoder (SGDepth; 19 = Cityscapes trainIds); "
        "0 = none. Kind resnet only.",
        minimum=0,
    )

    def build(self) -> nn.Module:
        """The network, freshly initialised (or with the ImageNet encoder of ``weights``).

        Raises:
            ValueError: a segmentation head on a kind other than resnet, or a bad width.
        """
        if self.segmentation < 0:
            raise ValueError(f"segmentation must be >= 0 classes, got {self.segmentation}")
        if self.segmentation > 0 and self.kind != "resnet":
            raise ValueError(f"a segmentation head (segmentation = {self.segmentation}) needs kind resnet, "
                             f"not {self.kind!r}; set segmentation: 0")
        if self.kind == "resnet":
            return DepthNet(self.encoder_layers, self.decoder, weights_path=self.weights or None,
                            seg_classes=self.segmentation)
        if self.kind == "unet":
            wf = 3 + math.log2(self.width)
            if wf != round(wf) or wf < 0:
                raise ValueError(f"unet width must be a power of two >= 1/8, got {self.width}")
            return UNet(wf=round(wf), negative_slope=self.negative_slope)
        if self.kind == "fc_densenet57":
            return fc_densenet57(width=self.width, kaiming=self.init == "kaiming")
        raise ValueError(f"unknown network kind {self.kind!r}: resnet, unet or fc_densenet57")


def build_pose_net(layers: int = 18, rotation: str = "axis_angle", weights: str | None = None) -> PoseNet:
    """monodepth2's pose network (ResNet encoder on a frame pair) with the given rotation form,
    its encoder from the ImageNet state dict ``weights`` (torchvision layout) or random."""
    return PoseNet(layers, rotation=rotation, weights_path=weights or None)
