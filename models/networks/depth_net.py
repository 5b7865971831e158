"""Encoder + decoder composition for the driving references' depth networks.

* ``"monodepth2"``: ResNet encoder + :class:`DepthDecoder` (4 scales, nearest upsampling);
  monodepth2 and Depth Hints.
* ``"sc_depth"``: the same with bilinear upsampling and only scale 0 (SC-Depth's DepthNet; its
  depth is ``geometry.sc_depth_from_disp(disp)``).
* ``"rsu"`` / ``"rsu_full"``: ResNet encoder + EPCDepth's :class:`RSUDecoder` (5 maps, or 10 with
  the encoder-side heads of full-scale training).

Optional segmentation head (SGDepth, ``seg_classes > 0``): a :class:`SegmentationDecoder` on the
same encoder features. The two tasks split at the encoder output, each branch passing the features
through :func:`scale_gradient` with its factor of :attr:`DepthNet.grad_scales`, so the encoder is
trained by ``grad_scales[0] x depth gradient + grad_scales[1] x segmentation gradient`` (SGDepth's
``ScaledSplit``). SGDepth's default split (``split_pos=1``) also shares the first decoder block
(the 3x3 conv on the deepest features); here both decoders are complete and separate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import Tensor, nn

from models.networks.depth_decoder import DepthDecoder
from models.networks.resnet_encoder import ResnetEncoder
from models.networks.rsu_decoder import RSUDecoder
from models.networks.segmentation import SegmentationDecoder, scale_gradient

DecoderKind = Literal["monodepth2", "sc_depth", "rsu", "rsu_full"]

__all__ = ["DecoderKind", "DepthNet"]


class DepthNet(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> list of sigmoid disparities, finest first (see module doc).

    Args:
        weights_path: optional torchvision-layout ImageNet state dict for the encoder.
        seg_classes: classes of an SGDepth segmentation head (``seg_decoder``) on the shared
            encoder; 0 = none (the module then has exactly the head-less parameters and keys, and
            the head is built after them, so the same seed gives the same encoder and decoder).

    Attributes:
        grad_scales: (depth, segmentation) gradient factors at the encoder output, used only with a
            segmentation head; a plain attribute set by the training stage, not saved.
    """

    def __init__(self, num_layers: int = 18, decoder: DecoderKind = "monodepth2",
                 weights_path: str | Path | None = None, seg_classes: int = 0) -> None:
        super().__init__()
        if seg_classes < 0:
            raise ValueError(f"seg_classes must be >= 0, got {seg_classes}")
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
        self.seg_classes = seg_classes
        self.seg_decoder = SegmentationDecoder(ch, seg_classes) if seg_classes else None
        self.grad_scales: tuple[float, float] = (1.0, 1.0)

    @property
    def has_segmentation(self) -> bool:
        """Whether the net has a segmentation head."""
        return self.seg_decoder is not None

    def _branch(self, features: list[Tensor], task: int) -> list[Tensor]:
        """The encoder features for one task (0 depth, 1 segmentation), gradient-scaled when the
        net has a segmentation head."""
        if self.seg_decoder is None:
            return features
        return [scale_gradient(f, self.grad_scales[task]) for f in features]

    def _require_head(self) -> SegmentationDecoder:
        if self.seg_decoder is None:
            raise ValueError("this DepthNet has no segmentation head: build it with seg_classes > 0 "
                             "(NetworkSpec.segmentation)")
        return self.seg_decoder

    def forward(self, image: Tensor) -> list[Tensor]:
        return self.decoder(self._branch(self.encoder(image), 0))

    def segment(self, image: Tensor) -> Tensor:
        """Class logits (B, seg_classes, H, W) of an image (B, 3, H, W) in [0, 1].

        Raises:
            ValueError: the net has no segmentation head.
        """
        head = self._require_head()
        return head(self._branch(self.encoder(image), 1))

    def forward_both(self, image: Tensor) -> tuple[list[Tensor], Tensor]:
        """Disparities (as :meth:`forward`) and logits (as :meth:`segment`) from ONE encoder pass;
        the encoder's gradient is ``grad_scales[0] x`` the depth branch's plus ``grad_scales[1] x``
        the segmentation branch's.

        Raises:
            ValueError: the net has no segmentation head.
        """
        head = self._require_head()
        features = self.encoder(image)
        return self.decoder(self._branch(features, 0)), head(self._branch(features, 1))
