"""SGDepth's semantic terms (Klingner et al., ECCV 2020), our own code.

* :func:`segmentation_loss`: weighted pixel-wise cross-entropy on Cityscapes trainIds
  (:data:`SEG_CLASS_WEIGHTS`, 255 = ignore).
* Moving-object masking of the photometric loss ("DC masking"): the predicted segmentation of each
  source frame is warped into the target view (:func:`warp_segmentation`); where the "movable"
  classes (:func:`movable`: person … bicycle) of the warped sources agree badly with the target's
  (:func:`moving_iou`), the objects probably moved and all their pixels are excluded
  (:class:`MovingObjectMasking`, whose IoU threshold is a percentile of the previous period's IoUs).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.geometry import SampleConvention, sample

__all__ = [
    "SEG_CLASS_WEIGHTS", "IGNORE_INDEX", "class_weights_from_frequencies", "segmentation_loss", "movable",
    "warp_segmentation", "moving_iou", "MovingObjectMasking",
]

# SGDepth's losses/segmentation.py weights of trainIds 0..18 (road … bicycle); its 20th value, 0,
# belongs to the "ignore" slot, which our 19-class head does not have.
SEG_CLASS_WEIGHTS: tuple[float, ...] = (
    2.8149201869965, 6.9850029945374, 3.7890393733978, 9.9428062438965,
    9.7702074050903, 9.5110931396484, 10.311357498169, 10.026463508606,
    4.6323022842407, 9.5608062744141, 7.8698215484619, 9.5168733596802,
    10.373730659485, 6.6616044044495, 10.260489463806, 10.287888526917,
    10.289801597595, 10.405355453491, 10.138095855713,
)
IGNORE_INDEX = 255


def class_weights_from_frequencies(frequencies: np.ndarray, c: float = 1.10) -> np.ndarray:
    """ENet's class weights ``1 / ln(c + p_k)`` of pixel frequencies ``p_k`` (K,) (fractions of
    the pixels, summing to at most 1). SGDepth's :data:`SEG_CLASS_WEIGHTS` are this formula with
    c = 1.10 on Cityscapes' frequencies over all pixels, void included (road: p = 0.327 -> 2.81;
    sky: p = 0.036 -> 7.87; the 19 sum to 0.885); a class that never occurs gets the largest
    weight, 1 / ln(c)."""
    p = np.asarray(frequencies, dtype=np.float64)
    if p.ndim != 1 or (p < 0).any() or p.sum() > 1.0 + 1e-9:
        raise ValueError(f"frequencies must be K >= 0 fractions summing to at most 1, got {p}")
    return 1.0 / np.log(c + p)


def segmentation_loss(logits: Tensor, labels: Tensor, weights: Tensor | None = None,
                      ignore_index: int = IGNORE_INDEX) -> Tensor:
    """SGDepth's segmentation loss: class-weighted cross-entropy, mean over the labelled pixels.

    Args:
        logits: (B, C, H, W) raw class scores.
        labels: (B, H, W) int64 trainIds in [0, C) or ``ignore_index``.
        weights: (C,) class weights (e.g. ``torch.tensor(SEG_CLASS_WEIGHTS)``); None = uniform.
            As in PyTorch, the mean is weighted: ``sum w_y * nll / sum w_y``.
    Returns:
        Scalar loss; 0 (still attached to ``logits``) when no pixel is labelled, where plain
        cross-entropy would give NaN.
    """
    if logits.dim() != 4 or labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"logits must be (B, C, H, W) and labels (B, H, W), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    if weights is not None:
        if weights.shape != (logits.shape[1],):
            raise ValueError(f"weights must have one value per class ({logits.shape[1]}), "
                             f"got shape {tuple(weights.shape)}")
        weights = weights.to(device=logits.device, dtype=logits.dtype)
    labels = labels.long()
    if not (labels != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, weight=weights, ignore_index=ignore_index)


def movable(seg: Tensor) -> Tensor:
    """Bool mask of SGDepth's potentially moving classes, ``(seg > 10) & (seg < 100)`` on trainIds:
    person, rider, car, truck, bus, train, motorcycle, bicycle (11 … 18); sky (10) and the
    ignore id 255 are not movable. Same shape as ``seg``."""
    return (seg > 10) & (seg < 100)


def warp_segmentation(seg: Tensor, pixels: Tensor, convention: SampleConvention = "exact") -> Tensor:
    """A source segmentation seen from the target view, by nearest-neighbour sampling.

    Args:
        seg: (B, H, W) int64 class ids of the source frame.
        pixels: (B, 2, H', W') where each target pixel lands in the source image (``Warp.pixels``).
        convention: sampling convention of the image warp (see :mod:`models.geometry`).
    Returns:
        (B, H', W') int64 ids, each copied from one source pixel (no blending); positions outside
        the image take the nearest border pixel (SGDepth's ``padding_mode="border"``).
    """
    if seg.dim() != 3:
        raise ValueError(f"seg must be (B, H, W), got {tuple(seg.shape)}")
    dtype = pixels.dtype if pixels.is_floating_point() else torch.float32
    out = sample(seg[:, None].to(dtype), pixels.to(dtype), convention, padding_mode="border", mode="nearest")
    return out[:, 0].round().long()


def moving_iou(target_seg: Tensor, warped_sources: list[Tensor]) -> Tensor:
    """Per image, the IoU of the movable classes between the warped sources and the target.

    As SGDepth's per-image binary confusion matrix accumulated over the sources:
    ``sum_s |M(W_s) & M(T)| / sum_s |M(W_s) | M(T)|`` with ``M`` = :func:`movable`.

    Args:
        target_seg: (B, H, W) class ids of the target frame.
        warped_sources: the source segmentations warped into the target view, each (B, H, W).
    Returns:
        (B,) float64 IoU in [0, 1]; NaN where no pixel is movable in the target nor in any warped
        source (empty union).
    """
    target = movable(target_seg).flatten(1)
    inter = torch.zeros(target.shape[0], dtype=torch.float64, device=target.device)
    union = torch.zeros_like(inter)
    for warped in warped_sources:
        if warped.shape != target_seg.shape:
            raise ValueError(f"warped source {tuple(warped.shape)} != target {tuple(target_seg.shape)}")
        w = movable(warped).flatten(1)
        inter += (w & target).sum(1)
        union += (w | target).sum(1)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, math.nan))


class MovingObjectMasking:
    """SGDepth's DCMasking state: which pixels of the photometric loss to keep.

    Each training period (SGDepth: epoch) logs the finite per-image IoUs of :func:`moving_iou`;
    at its end :meth:`end_period` sets the threshold for the next period to a percentile of that
    log. During a period, :meth:`mask` excludes every movable pixel (target and warped sources) of
    each image whose IoU is below the threshold. The threshold starts at 0.0 (nothing masked), so
    the first period of masking only collects IoUs.

    Attributes:
        threshold: IoU below which an image's movable pixels are excluded.
        iou_log: finite IoUs seen since the last :meth:`end_period`.
    """

    def __init__(self) -> None:
        self.threshold: float = 0.0
        self.iou_log: list[float] = []

    def mask(self, target_seg: Tensor, warped_sources: list[Tensor]) -> Tensor:
        """The loss mask of a batch and log its IoUs.

        Args:
            target_seg: (B, H, W) predicted class ids of the target frame.
            warped_sources: the predicted source segmentations warped into the target view
                (:func:`warp_segmentation`), each (B, H, W).
        Returns:
            (B, 1, H, W) float, 1 = keep, 0 = excluded (a movable pixel of an image with IoU <
            threshold); images with NaN IoU are never masked.
        """
        iou = moving_iou(target_seg, warped_sources)
        self.iou_log.extend(float(v) for v in iou.cpu().tolist() if math.isfinite(v))
        excluded = movable(target_seg)
        for warped in warped_sources:
            excluded = excluded | movable(warped)
        below = iou < self.threshold  # False for NaN
        excluded = excluded & below[:, None, None]
        return (~excluded).to(torch.float32)[:, None]

    def end_period(self, percentile: float) -> float:
        """Set the threshold to the ``percentile`` (in [0, 1]) of the IoU log (numpy's linear
        interpolation), clear the log and return the threshold (0.0 when the log is empty)."""
        if not 0.0 <= percentile <= 1.0:
            raise ValueError(f"percentile must be in [0, 1], got {percentile}")
        self.threshold = float(np.percentile(self.iou_log, 100.0 * percentile)) if self.iou_log else 0.0
        self.iou_log = []
        return self.threshold

    @staticmethod
    def linear_percentile(period: int, start: int, periods: int) -> float:
        """SGDepth's linear schedule ``1 - (period + 1 - start) / (periods - 1 - start)``, clamped to
        [0, 1]: the percentile for :meth:`end_period` at the end of ``period`` (0-based) when
        masking starts at period ``start`` of ``periods`` (SGDepth's "mask 100 % to 0 %"): it
        falls by ``1 / (periods - 1 - start)`` a period, from ``1 - 1 / (periods - 1 - start)``
        at the end of the start period to 0 at the end of period ``periods - 2`` (1 before it).

        Raises:
            ValueError: ``start >= periods - 1`` (no period left to mask in).
        """
        span = periods - 1 - start
        if span <= 0:
            raise ValueError(f"masking start {start} leaves no period to mask in ({periods} periods): "
                             f"it must be below {periods - 1}")
        return min(1.0, max(0.0, 1.0 - (period + 1 - start) / span))

    def state_dict(self) -> dict[str, float | list[float]]:
        """Plain-Python state (threshold and IoU log), for checkpoints."""
        return {"threshold": float(self.threshold), "iou_log": [float(v) for v in self.iou_log]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output, so that a resumed run continues identically."""
        self.threshold = float(state["threshold"])
        self.iou_log = [float(v) for v in state["iou_log"]]
