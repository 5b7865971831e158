"""Encoder + decoder composition for the driving references' depth networks.

* ``"monodepth2"``: ResNet encoder + :class:`DepthDecoder` (4 scales, nearest upsampling);
  monodepth2 and Depth Hints.
* ``"sc_depth"``: the same with bilinear upsampling and only scale 0 (SC-Depth's DepthNet; its
  depth is ``geometry.sc_depth_from_disp(disp)``).
* ``"rsu"`` / ``"rsu_full"``: ResNet encoder + EPCDepth's :class:`RSUDecoder` (5 maps, or 10 with
  the encoder-side heads of full-scale training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import Tensor, nn

from models.networks.depth_decoder import DepthDecoder
from models.networks.resnet_encoder import ResnetEncoder
from models.networks.rsu_decoder import RSUDecoder

DecoderKind = Literal["monodepth2", "sc_depth", "rsu", "rsu_full"]

__all__ = ["DecoderKind", "DepthNet"]


class DepthNet(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> list of sigmoid disparities, finest first (see module doc).

    Args:
        weights_path: optional torchvision-layout ImageNet state dict for the encoder.
    """

    def __init__(self, num_layers: int = 18, decoder: DecoderKind = "monodepth2",
                 weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, weights_path=weights_path)
        ch = self.encoder.num_ch_enc
        if decoder == "monodepth2":
            self.decoder: nn.Module = DepthDecoder(ch)
        elif decoder == "sc_depth":
            self.decoder = DepthDecoder(ch, scales=(0,), upsample_mode="bilinear")
        elif decoder in ("rsu", "rsu_full"):
            self.decoder = RSUDecoder(ch, use_encoder_disp=decoder == "rsu_full")
        else:
            raise ValueError(f"unknown decoder {decoder!r}; choose monodepth2, sc_depth, rsu or rsu_full")
        self.kind = decoder

    def forward(self, image: Tensor) -> list[Tensor]:
        return self.decoder(self.encoder(image))
