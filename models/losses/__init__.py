"""Losses of the references as pure functions (formulas in seed_methods §3.3, §6).

* :mod:`~models.losses.photometric`: SSIM (3x3 / 7x7), 0.85 SSIM + 0.15 L1, min reprojection + auto-mask.
* :mod:`~models.losses.smoothness`: edge-aware smoothness.
* :mod:`~models.losses.hints`: Depth Hints / EPCDepth hint-selection loss.
* :mod:`~models.losses.consistency`: SC-Depth geometry consistency, self-discovered mask.
* :mod:`~models.losses.endo`: endoscopy sparse-flow and depth-consistency losses.
* :mod:`~models.losses.distill`: scale-invariant teacher -> student loss ("+" form).
* :mod:`~models.losses.epc`: EPCDepth data grafting and self-distillation.
* :mod:`~models.losses.semantic`: SGDepth segmentation loss and moving-object masking.
"""

from models.losses.consistency import (
    PairTerms,
    geometry_consistency,
    mean_on_mask,
    sc_depth_losses,
    sc_pairwise_terms,
    self_discovered_mask,
)
from models.losses.distill import DISTILL_LOSSES, distillation_loss, scale_invariant_loss
from models.losses.endo import depth_consistency_loss, sparse_flow_loss, weighted_depth_consistency_loss
from models.losses.epc import data_graft, graft, self_distillation_loss
from models.losses.hints import (
    HINT_INVALID_PENALTY,
    HintLoss,
    depth_hint_loss,
    hint_proxy_loss,
    hint_reprojection_error,
)
from models.losses.photometric import (
    MinReprojection,
    min_reprojection_loss,
    photometric_error,
    ssim_loss_map,
    tie_noise,
)
from models.losses.semantic import (
    IGNORE_INDEX,
    SEG_CLASS_WEIGHTS,
    MovingObjectMasking,
    movable,
    moving_iou,
    segmentation_loss,
    warp_segmentation,
)
from models.losses.smoothness import edge_aware_smoothness

__all__ = [
    "PairTerms", "geometry_consistency", "mean_on_mask", "sc_depth_losses", "sc_pairwise_terms",
    "self_discovered_mask", "scale_invariant_loss", "distillation_loss", "DISTILL_LOSSES",
    "depth_consistency_loss", "sparse_flow_loss",
    "weighted_depth_consistency_loss", "data_graft", "graft", "self_distillation_loss",
    "HINT_INVALID_PENALTY", "HintLoss", "depth_hint_loss", "hint_proxy_loss", "hint_reprojection_error",
    "MinReprojection",
    "min_reprojection_loss", "photometric_error", "ssim_loss_map", "tie_noise", "edge_aware_smoothness",
    "IGNORE_INDEX", "SEG_CLASS_WEIGHTS", "MovingObjectMasking", "movable", "moving_iou", "segmentation_loss",
    "warp_segmentation",
]
