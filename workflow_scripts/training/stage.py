"""What one training stage runs with: its typed sections, its inputs, and its schedule.

:class:`StagePlan` joins a branch's ``common`` section and the stage's own section (both built
by :func:`workflow_scripts.util.options.load_options`) and turns lengths in steps or epochs
into the engine's :class:`~models.training.engine.Schedule`. :class:`StageInputs` holds every
path a stage reads, from the rule's inputs (and the KITTI roots from its params).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from models.model_file import save_model
from models.networks.spec import NetworkSpec
from models.training.distributed import is_main_process
from models.training.engine import Schedule, Validation, restore_best

# a stage's best validated error must be below this fraction of a constant depth's on the same
# frames (for an accuracy: its error 1 - accuracy below this fraction of the constant's)
LEARNT_MARGIN = 0.8

__all__ = ["StagePlan", "StageInputs", "check_against_constant", "save_stage_models"]


def _paths(value: Any) -> tuple[Path, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, Path)):
        return (Path(value),)
    return tuple(Path(v) for v in value)


@dataclass(frozen=True)
class StageInputs:
    """Every path a training stage reads.

    Attributes:
        previous: the previous stage's model.pt (student, fine-tune), else None.
        split: KITTI train list (monodepth2 lines).
        val_split: KITTI val list (validation; None = none).
        hints: KITTI depth-hint folders, one per drive (``.../depth_hints/<date>/<drive>``).
        sfm_data, frames: endoscopy sequences (sfm_data.npz and frame folder, same order).
        raw_root, image_root, image_ext: where the KITTI images and calibration are (the raw
            tree is not a file of the DAG on real data, so these come from the rule's params).
        labels, labels_split: a Cityscapes-format folder of labelled images and its split, for a
            segmentation branch (None = none configured).
    """

    previous: Path | None = None
    split: Path | None = None
    val_split: Path | None = None
    hints: tuple[Path, ...] = ()
    sfm_data: tuple[Path, ...] = ()
    frames: tuple[Path, ...] = ()
    raw_root: Path | None = None
    image_root: Path | None = None
    image_ext: str = "png"
    labels: Path | None = None
    labels_split: str = "train"

    @classmethod
    def from_rule(cls, inputs: Mapping[str, Any], paths: Mapping[str, Any] | None = None) -> StageInputs:
        """From a training rule's named inputs and its ``paths`` param."""
        paths = paths or {}
        return cls(
            previous=Path(inputs["previous"]) if inputs.get("previous") else None,
            split=Path(inputs["split"]) if inputs.get("split") else None,
            val_split=Path(inputs["val_split"]) if inputs.get("val_split") else None,
            hints=_paths(inputs.get("hints")),
            sfm_data=_paths(inputs.get("sfm_data")),
            frames=_paths(inputs.get("frames")),
            raw_root=Path(paths["raw_root"]) if paths.get("raw_root") else None,
            image_root=Path(paths["image_root"]) if paths.get("image_root") else None,
            image_ext=paths.get("image_ext", "png"),
            labels=Path(paths["labels"]) if paths.get("labels") else None,
            labels_split=paths.get("labels_split", "train"),
        )


@dataclass(frozen=True)
class StagePlan:
    """A stage of a branch with its settings.

    Attributes:
        branch, stage: e.g. ("kitti", "teacher").
        common: the branch's shared section (size, batch_size, workers, unit, checkpoint_every, ...).
        section: the stage's section (length, lr_step, lr, network, losses, ...).
        size: training (height, width): ``common.size``, or for the endoscopy branch's ``[]`` the
            network size of the sequences' sfm_data.
        network: the depth network (the fine-tune's is the student's, read from its model).
    """

    branch: str
    stage: str
    common: Any
    section: Any
    size: tuple[int, int]
    network: NetworkSpec

    def __post_init__(self) -> None:
        h, w = self.size
        if h % 32 or w % 32 or min(h, w) < 64:
            raise ValueError(
                f"{self.branch}.{self.stage}: training size {self.size} must be multiples of 32 "
                "and at least 64 (the encoder's 1/32 bottleneck needs 2 pixels for its padding)"
            )

    def per_unit(self, n_items: int) -> int:
        """Optimiser steps per unit of length: 1 for steps, the steps of an epoch for epochs."""
        return math.ceil(n_items / self.common.batch_size) if self.common.unit == "epochs" else 1

    def schedule(self, n_items: int, optimizer: str = "adam", **extra) -> Schedule:
        """Steps and learning-rate milestones of ``n_items`` training items."""
        per_unit = self.per_unit(n_items)
        steps = self.section.length * per_unit
        milestones = (self.section.lr_step * per_unit,) if self.section.lr_step else ()
        return Schedule(
            steps=steps,
            batch_size=self.common.batch_size,
            lr=self.section.lr,
            optimizer=optimizer,
            lr_milestones=milestones,
            checkpoint_every=min(self.common.checkpoint_every * per_unit, steps),
            log_every=max(1, min(10, steps // 20)),
            workers=self.common.workers,
            max_nonfinite_steps=self.common.max_nonfinite_steps,
            **extra,
        )


def save_stage_models(nets: nn.ModuleDict, out_model: Path, validated: bool, meta: dict,
                      log: Any) -> dict | None:
    """Write a trained stage: ``last.pt`` (the last step's weights), then ``model.pt``, the best
    validated step's weights when ``validated`` (its step, metric and value in ``meta["best"]``,
    also returned), else the last ones. ``meta``: :func:`models.model_file.save_model`'s keywords.
    In a data-parallel run only rank 0 writes (the others return None)."""
    if not is_main_process():
        return None
    save_model(nets.cpu(), out_model.parent / "last.pt", **meta)
    best = restore_best(out_model.parent, nets) if validated else None
    save_model(nets.cpu(), out_model, **meta, **({"best": best} if best else {}))
    if best:
        log.info("%s/%s: model.pt = step %d of %d (val %s %.4g); last.pt = step %d", meta["branch"],
                 meta["stage"], best["step"], meta["steps"], best["metric"], best["value"], meta["steps"])
    return best


def check_against_constant(best: dict, validation: Validation, stage: str, log: Any, hint: str) -> bool:
    """Whether the best validated step (``best``: ``step``, ``metric``, ``value``, as
    :func:`save_stage_models` returns it) beats a constant depth on the same val frames
    (``validation.baseline``) by the margin :data:`LEARNT_MARGIN`; in ``validation.mode`` "max"
    the metric is an accuracy (larger is better). When it does not, a warning on ``log`` names
    both values and ``hint``, where to look: a run that learnt no depth scores about a constant's,
    whatever went wrong (a monocular pose network that went sideways, a learning rate too high,
    ...). True without a baseline."""
    if validation.baseline is None:
        return True
    metric, value, base = best["metric"], float(best["value"]), float(validation.baseline[best["metric"]])
    error, base_error = (1.0 - value, 1.0 - base) if validation.mode == "max" else (value, base)
    if error < LEARNT_MARGIN * base_error:
        return True
    log.warning("%s: its best validated step (%d) scores %s %.3f on the val frames, a constant depth %.3f: "
                "the stage has learnt no depth to speak of, and its model.pt is not to be trusted. %s",
                stage, int(best["step"]), metric, value, base, hint)
    return False
