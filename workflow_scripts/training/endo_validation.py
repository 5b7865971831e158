"""Validation of an endoscopy stage on the held-out views of its sequences.

Every sequence's last views (``endoscopy.train.common.val_fraction`` of them, see
:func:`workflow_scripts.endo.dataset.training_views`) are in no training pair of any stage. A
validation runs the depth network on them at the training size and scores its raw depth against
the views' SfM sparse depths with the evaluation's protocol (per-frame median scaling, then
abs_rel and delta1 < 1.25, frames averaged: :func:`workflow_scripts.endo.evaluate.median_scaled_errors`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.inference import predict_endo_raw
from workflow_scripts.endo.dataset import EndoSequence, training_views
from workflow_scripts.endo.evaluate import median_scaled_errors

__all__ = ["HeldOutViews", "METRICS", "MAX_MODE", "constant_baseline", "load_val_set", "validate_depth"]

log = logging.getLogger(__name__)

METRICS = ("abs_rel", "delta1")
MAX_MODE = ("delta1",)  # larger is better


@dataclass(frozen=True)
class HeldOutViews:
    """The held-out views of one sequence that have sparse samples.

    Attributes:
        name: the sequence; views: their rows of sfm_data (V,).
        colors: (V, 3, H, W) RGB in [0, 1] at the training size; mask: (1, H, W) {0, 1} boundary.
        depth: (V, H, W) float32 sparse depth (SfM z / global_scale, 0 = none); valid: (V, H, W) bool.
    """

    name: str
    views: np.ndarray
    colors: torch.Tensor
    mask: torch.Tensor
    depth: np.ndarray
    valid: np.ndarray


def load_val_set(sequences: list[EndoSequence], val_fraction: float) -> list[HeldOutViews]:
    """The held-out views of every sequence (sequences without any are left out)."""
    out = []
    for seq in sequences:
        held = range(training_views(seq.n_views, val_fraction), seq.n_views)
        kept = [(v, d, m) for v, (d, m) in zip(held, map(seq.sparse_depth, held), strict=True) if m.any()]
        if not kept:
            continue
        views = [v for v, _, _ in kept]
        sparse = [(d, m) for _, d, m in kept]
        out.append(HeldOutViews(
            name=seq.name,
            views=np.asarray(views),
            colors=torch.stack([seq.color(v) for v in views]),
            mask=torch.from_numpy(seq.mask[None] / 255.0).float(),
            depth=np.stack([d for d, _ in sparse]),
            valid=np.stack([m > 0 for _, m in sparse]),
        ))
    log.info("validation: %s held-out views", ", ".join(f"{h.name} {len(h.views)}" for h in out) or "no")
    return out


def validate_depth(nets: nn.ModuleDict, val: list[HeldOutViews], batch_size: int = 8) -> dict[str, float]:
    """Mean abs_rel and delta1 of ``nets["depth"]``'s raw depth over all held-out views."""
    net = nets["depth"]
    device = next(net.parameters()).device
    raws = [predict_endo_raw(net, held.colors, held.mask, device, batch_size).numpy() for held in val]
    return _scores(raws, val)


def constant_baseline(val: list[HeldOutViews]) -> dict[str, float]:
    """The same metrics of a constant depth on ``val`` (the evaluation's ``constant`` row), what a
    stage that learnt depth beats."""
    return _scores([np.ones(held.depth.shape, np.float32) for held in val], val)


def _scores(raws: list[np.ndarray], val: list[HeldOutViews]) -> dict[str, float]:
    """Mean abs_rel and delta1 of the depths ``raws`` ((V, H, W) per sequence) over the views."""
    scores = []
    for raw, held in zip(raws, val, strict=True):
        scores += [median_scaled_errors(raw[n][held.valid[n]], held.depth[n][held.valid[n]])
                   for n in range(len(raw))]
    scores = [s for s in scores if np.isfinite(s[0])]
    if not scores:
        return {"abs_rel": float("nan"), "delta1": float("nan")}
    abs_rel, delta1 = np.mean(scores, axis=0)
    return {"abs_rel": float(abs_rel), "delta1": float(delta1)}
