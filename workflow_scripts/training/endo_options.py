"""Config sections of the endoscopy training stages (``endoscopy.train``).

Defaults are Liu et al.'s CARE 2018 schedule; the demo's small settings are ``config/demo.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.networks.spec import NetworkSpec
from workflow_scripts.training.options import (
    DISTILL_DOC,
    LENGTH_DOC,
    LR_STEP_DOC,
    NODES_DOC,
    NONFINITE_DOC,
    PROCESSES_DOC,
    Unit,
    check_processes,
)
from workflow_scripts.util.options import option

__all__ = ["EndoTrain", "EndoCommon", "EndoTeacher", "EndoStudent", "EndoFinetune", "Cyclic", "DclWarmup"]


@dataclass(frozen=True, kw_only=True)
class Cyclic:
    """Triangular cyclic learning rate between min_lr and the stage's lr."""

    min_lr: float = option(1.0e-4, "Lower bound (0 = a constant lr).", minimum=0)
    step: int = option(2000, "Half a cycle, in units (the reference: 2000 optimiser steps).", minimum=1)


@dataclass(frozen=True, kw_only=True)
class DclWarmup:
    """A depth-consistency weight for the first units of a stage."""

    weight: float = option(0.1, "Weight during the warm-up (the current reference: 0.1).", minimum=0)
    length: int = option(0, "Units of the warm-up (0 = none; the current reference: 20 epochs).", minimum=0)


@dataclass(frozen=True, kw_only=True)
class EndoCommon:
    """Settings shared by the endoscopy stages."""

    size: tuple[int, ...] = option(
        (),
        "Training resolution [height, width] (multiples of 64 for the UNet); "
        "[] = the network size of sfm_data.",
        maxItems=2,
        **{"not": {"minItems": 1, "maxItems": 1}},
    )
    batch_size: int = option(8, "Frame pairs per step.", minimum=1)
    workers: int = option(8, "DataLoader processes (0 = load in the training process).", minimum=0)
    unit: Unit = option("epochs", "Unit of every stage's length, lr_step, cyclic.step and dcl_warmup.length.")
    checkpoint_every: int = option(1, "Units between checkpoints.", minimum=1)
    max_nonfinite_steps: int = option(5, NONFINITE_DOC, minimum=0)
    items_per_epoch: int = option(
        2000, "Items of an epoch (the reference's num_iter); 0 = one per registered view.", minimum=0
    )
    adjacent_range: tuple[int, int] = option(
        (10, 20), "Views between the two frames of a pair [min, max] (capped by the visibility window)."
    )
    sampling: Literal["exact", "endoscopy"] = option(
        "exact",
        "Warp sampling of the depth consistency: exact = pixel centres at integers; endoscopy = the "
        "reference's grid normalisation by W.",
    )
    threads: int = option(
        2,
        "PyTorch threads of each training stage on the CPU (intra-op); like kitti.train.common.threads, a "
        "setting because the last bits of the results depend on it.",
        minimum=1,
    )
    processes: int = option(1, PROCESSES_DOC, minimum=1)
    nodes: int = option(1, NODES_DOC, minimum=1)
    bf16: bool = option(True, "bfloat16 autocast of the networks on CUDA (the geometry stays float32).")
    channels_last: bool = option(
        True,
        "Channels-last memory format on the CPU too (always on CUDA): about 25 % "
        "faster steps on 2 CPU cores for the UNet and FC-DenseNet57.",
    )
    val_every: int = option(
        1,
        "Units (common.unit) between validations (and at the last step) on the held-out views of each "
        "sequence: abs_rel and delta1 against their SfM sparse depths (per-frame median scaling, as "
        "results/endo_eval.csv); model.pt is then the best validated step and last.pt the last; 0 = no "
        "validation, no held-out views (model.pt = last).",
        minimum=0,
    )
    val_fraction: float = option(
        0.1,
        "Share of each sequence's registered views, the last ones, held out of every stage's training "
        "pairs for validation (at least one view, and two stay for training).",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
    )
    val_metric: Literal["abs_rel", "delta1"] = option(
        "abs_rel", "Validation metric that selects model.pt (abs_rel: the smallest, delta1: the largest)."
    )

    def __post_init__(self) -> None:
        check_processes(self, "endoscopy.train.common")


@dataclass(frozen=True, kw_only=True)
class EndoOptimiser:
    """Optimiser settings of an endoscopy stage (the reference: SGD, cyclic 1e-4 .. 1e-3, clip 10)."""

    length: int = option(4, LENGTH_DOC, minimum=0)
    lr_step: int = option(0, LR_STEP_DOC, minimum=0)
    optimizer: Literal["sgd", "adam"] = option("sgd", "sgd (momentum 0.9, the reference) or adam.")
    lr: float = option(1.0e-3, "Learning rate; the maximum of the cyclic schedule.", exclusiveMinimum=0)
    cyclic: Cyclic = option(factory=Cyclic, doc=Cyclic.__doc__)
    clip_grad: float = option(10.0, "Gradient-norm clipping (0 = none).", minimum=0)
    augment: bool = option(True, "Independent colour jitter of the two frames of a pair.")


@dataclass(frozen=True, kw_only=True)
class EndoSfMLoss(EndoOptimiser):
    """The SfM losses: sfl_weight x sparse flow + dcl_weight x depth consistency (+ ssl_weight x
    the spread of the per-point scales)."""

    sfl_weight: float = option(100.0, "Sparse-flow loss weight.", minimum=0)
    dcl_weight: float = option(10.0, "Depth-consistency loss weight.", minimum=0)
    dcl_warmup: DclWarmup = option(factory=DclWarmup, doc=DclWarmup.__doc__)
    consistency: Literal["weighted_l2", "normalized_distance"] = option(
        "weighted_l2",
        "Depth consistency: weighted_l2 (teacher era) or normalized_distance (the current "
        "reference, weights 20 / 5).",
    )
    ssl_weight: float = option(0.3, "Weight of the depth-scaling layer's scale spread (0 = off).", minimum=0)
    flow_outlier_threshold: float = option(
        0.2,
        "A pair direction whose sparse-flow loss exceeds this gets none (the teacher era's failure "
        "detection, --sfm_result_outlier_threshold 0.2): a depth that puts SfM points near or behind the "
        "other camera's plane has an unbounded flow error, which otherwise blows the training up; 0 = off.",
        minimum=0,
    )


@dataclass(frozen=True, kw_only=True)
class EndoTeacher(EndoSfMLoss):
    """Teacher: a UNet + depth-scaling layer on the SfM losses."""

    network: NetworkSpec = option(factory=lambda: NetworkSpec(kind="unet"), doc="The depth network.")


@dataclass(frozen=True, kw_only=True)
class EndoStudent(EndoOptimiser):
    """Student: FC-DenseNet57 learning the frozen teacher's depth (scale-invariant loss)."""

    network: NetworkSpec = option(factory=lambda: NetworkSpec(kind="fc_densenet57"), doc="The depth network.")
    eigen_lambda: float | None = option(None, "null = the reference's '+' form; a number = Eigen's form.")
    loss: Literal["scale_invariant", "log_l1", "abs_rel"] = option("scale_invariant", DISTILL_DOC)


@dataclass(frozen=True, kw_only=True)
class EndoFinetune(EndoSfMLoss):
    """Fine-tune: the student on the SfM losses again."""


@dataclass(frozen=True, kw_only=True)
class EndoTrain:
    """Endoscopy training (Liu et al., CARE 2018): teacher -> student -> fine-tune
    (results/endo/train/<stage>/); depths in units of each sequence's global scale."""

    common: EndoCommon = option(factory=EndoCommon, doc="Settings shared by the stages.")
    teacher: EndoTeacher = option(factory=EndoTeacher, doc=EndoTeacher.__doc__)
    student: EndoStudent = option(factory=lambda: EndoStudent(length=1), doc=EndoStudent.__doc__)
    finetune: EndoFinetune = option(factory=lambda: EndoFinetune(length=12), doc=EndoFinetune.__doc__)
