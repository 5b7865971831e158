"""Pose network for frame pairs: a 6-channel ResNet encoder + monodepth2's pose decoder (§6.4.2).

Decoder: squeeze 1x1 conv (-> 256) + ReLU, 3x3 conv 256 + ReLU twice, 1x1 conv -> 6 n,
spatial mean, x 0.01. The 6 numbers are read as (rotation, translation) by monodepth2
(axis-angle) and as (translation, rotation) by SC-Depth (Euler); :class:`PoseNet` returns the
4x4 transform for either convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from models.networks.resnet_encoder import ResnetEncoder
from models.rotations import RotationKind, pose_vec_to_mat

__all__ = ["PoseDecoder", "PoseNet"]


class PoseDecoder(nn.Module):
    """Regress ``num_frames`` 6-vectors from the deepest features of ``num_input_features``
    encoders (monodepth2's PoseDecoder; its separate-ResNet pair model uses 1 input and predicts
    2 frames of which only the first is used).

    Returns (forward): (B, num_frames, 6), already multiplied by 0.01.
    """

    def __init__(self, num_ch_enc: Sequence[int], num_input_features: int = 1, num_frames: int = 2) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.squeeze = nn.Conv2d(num_ch_enc[-1], 256, 1)
        self.pose0 = nn.Conv2d(num_input_features * 256, 256, 3, 1, 1)
        self.pose1 = nn.Conv2d(256, 256, 3, 1, 1)
        self.pose2 = nn.Conv2d(256, 6 * num_frames, 1)
        self.relu = nn.ReLU()

    def forward(self, features: Sequence[Sequence[Tensor]]) -> Tensor:
        x = torch.cat([self.relu(self.squeeze(f[-1])) for f in features], 1)
        x = self.relu(self.pose0(x))
        x = self.relu(self.pose1(x))
        x = self.pose2(x).mean(3).mean(2)
        return 0.01 * x.view(-1, self.num_frames, 6)


class PoseNet(nn.Module):
    """Relative pose of an image pair.

    Args:
        rotation: "axis_angle" (monodepth2: vector = (r, t)) or "euler" (SC-Depth: (t, r)).
        weights_path: optional torchvision ImageNet state dict for the encoder (conv1 repeated
            for the 6 input channels and halved).
        num_frames: 6-vectors the decoder regresses, of which the first is used; default 2 as
            monodepth2's pair model for "axis_angle", 1 as SC-Depth's PoseNet for "euler".
    """

    def __init__(self, num_layers: int = 18, rotation: RotationKind = "axis_angle",
                 weights_path: str | Path | None = None, num_frames: int | None = None) -> None:
        super().__init__()
        if rotation not in ("axis_angle", "euler"):
            raise ValueError(f"rotation must be 'axis_angle' or 'euler', got {rotation!r}")
        self.rotation = rotation
        self.encoder = ResnetEncoder(num_layers, num_input_images=2, weights_path=weights_path)
        frames = num_frames if num_frames is not None else (2 if rotation == "axis_angle" else 1)
        self.decoder = PoseDecoder(self.encoder.num_ch_enc, num_input_features=1, num_frames=frames)

    def forward(self, image_a: Tensor, image_b: Tensor) -> Tensor:
        """The 6-vector (B, 6) for the pair, inputs (B, 3, H, W) in [0, 1], concatenated in
        the order given (monodepth2 passes frames in temporal order)."""
        return self.decoder([self.encoder(torch.cat([image_a, image_b], 1))])[:, 0]

    def to_matrix(self, vec: Tensor, invert: bool = False) -> Tensor:
        """4x4 transform (B, 4, 4) of :meth:`forward`'s output in this network's convention."""
        if self.rotation == "axis_angle":
            return pose_vec_to_mat(vec[:, :3], vec[:, 3:], "axis_angle", invert)
        return pose_vec_to_mat(vec[:, 3:], vec[:, :3], "euler", invert)
