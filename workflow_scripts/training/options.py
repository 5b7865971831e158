"""Config sections of the training stages (``kitti.train``, ``endoscopy.train``).

Defaults are the references' recipes (monodepth2 / Depth Hints for the driving branch, Liu et
al.'s CARE 2018 schedule for endoscopy); the demo's small settings are ``config/demo.yaml``.
Each stage section holds its own ``length`` and ``lr_step``, so that a stage's rule params
(rerun triggers) change only when its own settings do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.networks.spec import NetworkSpec
from workflow_scripts.util.options import ConfigError, option

__all__ = [
    "KittiTrain",
    "KittiCommon",
    "KittiTeacher",
    "KittiStudent",
    "KittiFinetune",
    "KittiSegmentation",
    "KittiMasking",
    "STAGES",
]

STAGES = ("teacher", "student", "finetune")
Unit = Literal["steps", "epochs"]
DISTILL_DOC = (
    "Distillation loss: scale_invariant (eigen_lambda's form), log_l1 (mean |log d - log d_t|) or abs_rel "
    "(mean |s d - d_t| / d_t, s = mean(d_t) / mean(d) per image: scale-invariant without a logarithm)."
)
LENGTH_DOC = "Training length in the unit of common.unit (steps or epochs of the training items)."
NONFINITE_DOC = (
    "Consecutive optimiser steps with a non-finite loss or gradient norm that are skipped before the stage "
    "stops with an error (and writes no model); 0 = stop at the first."
)
LR_STEP_DOC = "The learning rate is multiplied by 0.1 after this many units (0 = never)."
POSE_WEIGHTS_DOC = (
    "A local ImageNet state dict in torchvision's key layout for the pose network's encoder (pose_layers; "
    "conv1 repeated for the frame pair and halved, monodepth2); null = random initialisation. monodepth2, "
    "SGDepth and SC-Depth start both encoders from ImageNet: set it with network.weights."
)
PROCESSES_DOC = (
    "Data-parallel processes of each training stage (torchrun + torch.distributed: NCCL on GPUs, gloo on "
    "the CPU; docs/cluster.md). batch_size stays the global batch, split evenly over the processes (so it "
    "must be a multiple); each process uses `threads` CPU threads and `workers` loaders, the rule reserves "
    "processes x threads cores and gpu=processes GPUs (one each). 1 = one process, no launcher. With "
    "`nodes` above 1 this is the processes of each node."
)
NODES_DOC = (
    "SLURM nodes of each training stage: the stage runs on nodes x processes ranks, `processes` GPUs on "
    "each node (sbatch --nodes=N --gres=gpu:<processes>; srun starts one torchrun per node, the first "
    "node hosts the rendezvous; docs/cluster.md). Above 1 it needs a SLURM allocation (profiles/slurm); "
    "1 = one machine."
)


def check_processes(common, where: str) -> None:
    """ConfigError unless ``common.batch_size`` splits evenly over the ranks (``common.processes``
    x ``common.nodes``)."""
    ranks = common.processes * common.nodes
    if common.batch_size % ranks:
        raise ConfigError(
            f"config {where}: batch_size {common.batch_size} does not split over the {ranks} processes "
            f"(processes {common.processes} x nodes {common.nodes}): set batch_size to a multiple of "
            f"{ranks} (it is the global batch)"
        )


@dataclass(frozen=True, kw_only=True)
class KittiCommon:
    """Settings shared by the driving branch's stages."""

    size: tuple[int, int] = option(
        (192, 640), "Training resolution [height, width] in pixels, multiples of 32 and at least 64."
    )
    batch_size: int = option(12, "Items per optimiser step.", minimum=1)
    workers: int = option(8, "DataLoader processes (0 = load in the training process).", minimum=0)
    unit: Unit = option("epochs", "Unit of every stage's length and lr_step.")
    checkpoint_every: int = option(
        1, "Units between checkpoints (the last one is always written).", minimum=1
    )
    max_nonfinite_steps: int = option(5, NONFINITE_DOC, minimum=0)
    min_depth: float = option(
        0.1, "Depth range of disp_to_depth: minimum (training units).", exclusiveMinimum=0
    )
    max_depth: float = option(
        100.0, "Depth range of disp_to_depth: maximum (training units).", exclusiveMinimum=0
    )
    threads: int = option(
        2,
        "PyTorch threads of each training stage on the CPU (intra-op). The last bits of the results depend "
        "on it (the order of floating-point sums), so it is a setting, not Snakemake's --cores: the same "
        "config gives bit-identical models whatever the cores and the scheduling. The rule reserves as many "
        "cores.",
        minimum=1,
    )
    processes: int = option(1, PROCESSES_DOC, minimum=1)
    nodes: int = option(1, NODES_DOC, minimum=1)
    automask: bool = option(True, "monodepth2's auto-masking (identity reprojection losses).")
    stereo_baseline: float = option(
        0.1,
        "Baseline of the training stereo pairs in training units (monodepth2: "
        "0.1; depths x 5.4 are then metres on KITTI).",
        exclusiveMinimum=0,
    )
    sampling: Literal["exact", "monodepth2"] = option(
        "exact",
        "Warp sampling: exact = pixel centres at integers with align_corners=True; monodepth2 = the "
        "references' half-pixel quirk.",
    )
    labels: str = option(
        "",
        "Labelled images of a stage's segmentation branch: a folder in the Cityscapes layout "
        "(leftImg8bit/<split>/<city>/*_leftImg8bit.png, gtFine/<split>/<city>/*_gtFine_labelIds.png); "
        '"" = the demo\'s labels on the demo drives, none on real data.',
    )
    labels_split: str = option("train", "The split folder of `labels` to train on.")
    val_every: int = option(
        1,
        "Units (common.unit) between validations on the val list (and at the last step): the Eigen metrics "
        "(median scaling) where the val frames have ground truth (annotated depth maps or LiDAR); model.pt "
        "is then the best validated step and last.pt the last; 0 = no validation (model.pt = last).",
        minimum=0,
    )
    val_metric: Literal["abs_rel", "sq_rel", "rmse", "rmse_log", "a1"] = option(
        "abs_rel", "Validation metric that selects model.pt (a1: the largest, the others: the smallest)."
    )
    val_frames: int = option(
        200, "Val-list lines scored per validation (evenly spaced; the standard lists hold thousands).",
        minimum=1,
    )

    def __post_init__(self) -> None:
        check_processes(self, "kitti.train.common")


@dataclass(frozen=True, kw_only=True)
class KittiSegmentation:
    """SGDepth's segmentation branch: a decoder on the depth network's shared encoder, trained
    with the stage on labelled images (common.labels), with gradient scaling at the encoder."""

    enabled: bool = option(False, "Train a segmentation head (19 Cityscapes classes) with the stage.")
    weight: float = option(1.0, "Weight of the cross-entropy beside the depth loss.", minimum=0)
    grad_scale_depth: float = option(
        0.9, "Factor of the depth gradient entering the shared encoder (SGDepth: 0.9).", minimum=0
    )
    grad_scale_segmentation: float = option(
        0.1, "Factor of the segmentation gradient entering the shared encoder (SGDepth: 0.1).", minimum=0
    )
    batch_size: int = option(
        0,
        "Labelled images per optimiser step (SGDepth: 6, as its depth batch), split over the processes like "
        "the depth batch (so a multiple of processes x nodes); 0 = common.batch_size.",
        minimum=0,
    )
    class_weights: Literal["sgdepth", "frequency", "none"] = option(
        "sgdepth",
        "Class weights of the cross-entropy: SGDepth's (ENet's 1 / ln(1.10 + p) of Cityscapes' class "
        "frequencies p), the same formula on the frequencies of the stage's labelled images, or none.",
    )
    scale_augment: bool = option(
        True, "Random scale (1-1.5x) and crop of the labelled images, and flips (SGDepth)."
    )


@dataclass(frozen=True, kw_only=True)
class KittiMasking:
    """SGDepth's semantic masking of moving objects in video training: per image, the IoU of
    the movable-class masks (person ... bicycle) of the target frame and the source frames'
    segmentations warped to it; an image whose IoU is below a percentile of the IoUs of the
    previous period loses all its movable pixels from the photometric loss."""

    enabled: bool = option(False, "Mask moving objects (needs a segmentation head).")
    start: float = option(
        0.75,
        "Fraction of the stage after which masking starts (SGDepth: epoch 15 of 20); its first period only "
        "collects IoUs.",
        minimum=0,
        maximum=1,
    )
    periods: int = option(
        5,
        "Periods the masked part of the stage is divided into; the threshold is updated at the end of each "
        "from that period's IoUs (SGDepth: epochs, 5).",
        minimum=2,
    )
    schedule: Literal["linear", "fixed"] = option(
        "linear",
        "Percentile of the threshold: linear = SGDepth's --masking-linear-increase (100 % of the images "
        "under it after the first period, falling linearly to 0 % in the last); fixed = `percent`.",
    )
    percent: float = option(0.1, "Percentile with schedule fixed (SGDepth's moving_mask_percent).",
                            minimum=0, maximum=1)
    control: bool = option(
        False,
        "Also train the same stage without masking (same steps, seed and data) as <stage>_unmasked "
        "(teacher_unmasked, finetune_unmasked), a row of results/kitti_eval.csv beside it.",
    )


@dataclass(frozen=True, kw_only=True)
class KittiTeacher:
    """Teacher (Depth Hints / EPCDepth): stereo pairs with the fused SGM depth hints. Also the
    stage of a single method's recipe: monodepth2 M / S / MS, SC-Depth v1 (docs/recipes.md)."""

    length: int = option(20, LENGTH_DOC, minimum=0)
    lr_step: int = option(15, LR_STEP_DOC, minimum=0)
    network: NetworkSpec = option(factory=NetworkSpec, doc="The depth network.")
    lr: float = option(1.0e-4, "Adam learning rate.", exclusiveMinimum=0)
    frame_ids: tuple[int, ...] = option(
        (0,),
        "Frames: [0] = stereo only; [0, -1, 1] adds the temporal neighbours and a pose network "
        "(monodepth2's mono+stereo; with stereo false, monodepth2's monocular training).",
        minItems=1,
    )
    stereo: bool = option(True, "The other camera is a source frame (monodepth2's --use_stereo); false = "
                          "monocular video (monodepth2 M, SC-Depth): needs temporal frames, no hints.")
    loss: Literal["monodepth2", "sc_depth"] = option(
        "monodepth2", "monodepth2 = minimum reprojection with auto-masking per scale (with hints: Depth "
        "Hints' selection); sc_depth = SC-Depth v1's loss on monocular video: both directions per neighbour, "
        "7x7 SSIM, self-discovered mask, geometry consistency, smoothness on the depth, scale 0 only.")
    geometry_weight: float = option(0.1, "SC-Depth's geometry-consistency weight (loss sc_depth).", minimum=0)
    hints: bool = option(True, "Use the precomputed SGM depth hints (needs stereo).")
    hint_variant: Literal["depth_hints", "epcdepth"] = option(
        "depth_hints", "How invalid hints enter the proxy loss: depth_hints or epcdepth."
    )
    data_graft: bool = option(False, "EPCDepth's data grafting (use decoder rsu_full with it).")
    self_distillation: bool = option(False, "EPCDepth's self-distillation over the scales.")
    smoothness: float = option(
        0.0, "Edge-aware smoothness weight (Depth Hints and EPCDepth train with 0).", minimum=0
    )
    segmentation: KittiSegmentation = option(factory=KittiSegmentation, doc=KittiSegmentation.__doc__)
    masking: KittiMasking = option(
        factory=KittiMasking,
        doc=KittiMasking.__doc__ + " On the temporal sources (frame_ids), with loss monodepth2; SGDepth "
        "masks in monocular video from scratch (config/recipes/sgdepth.yaml); its control is "
        "teacher_unmasked.",
    )
    pose_layers: Literal[18, 50] = option(18, "ResNet depth of the pose network (with temporal frames).")
    pose_rotation: Literal["axis_angle", "euler"] = option("axis_angle", "Rotation form of the pose network.")
    pose_weights: str | None = option(None, POSE_WEIGHTS_DOC)
    pose_lr: float | None = option(
        None,
        "Learning rate of the pose network (with temporal frames); null = lr, as monodepth2. From scratch "
        "on the demo's video, 10x lr shrinks the translations and the depth with them (docs/driving.md, "
        "SGDepth).",
        exclusiveMinimum=0,
    )

    def __post_init__(self) -> None:
        mono = not self.stereo
        for wrong, why in (
            (self.hints and mono, "hints need stereo (a hint is warped from the other camera)"),
            (mono and not any(self.frame_ids[1:]), "stereo: false needs temporal frames ([0, -1, 1])"),
            (self.self_distillation and mono, "self_distillation uses the stereo warp of every scale"),
            (self.loss == "sc_depth" and not (mono and not self.data_graft and not self.self_distillation),
             "loss sc_depth is SC-Depth v1's monocular loss: set stereo, hints, data_graft and "
             "self_distillation to false"),
            (self.masking.enabled and not any(self.frame_ids[1:]),
             "masking excludes moving objects from the temporal sources' loss: it needs "
             "frame_ids [0, -1, 1]"),
            (self.masking.enabled and self.loss == "sc_depth", "masking is implemented for loss monodepth2"),
            (self.pose_lr is not None and not any(self.frame_ids[1:]),
             "pose_lr is the pose network's rate: it needs frame_ids [0, -1, 1]"),
            (self.pose_weights is not None and not any(self.frame_ids[1:]),
             "pose_weights are the pose network's: it needs frame_ids [0, -1, 1]"),

        ):
            if wrong:
                raise ConfigError(f"config kitti.train.teacher: {why}")

@dataclass(frozen=True, kw_only=True)
class KittiStudent:
    """Student: learns the frozen teacher's depth on the frames kept by filter_frames."""

    length: int = option(20, LENGTH_DOC, minimum=0)
    lr_step: int = option(15, LR_STEP_DOC, minimum=0)
    network: NetworkSpec = option(factory=NetworkSpec, doc="The depth network.")
    lr: float = option(1.0e-4, "Adam learning rate.", exclusiveMinimum=0)
    eigen_lambda: float | None = option(
        None,
        "Scale-invariant loss: null = the endoscopy reference's '+' form; a number = Eigen's '-lambda' form.",
    )
    loss: Literal["scale_invariant", "log_l1", "abs_rel"] = option("scale_invariant", DISTILL_DOC)
    segmentation: KittiSegmentation = option(factory=KittiSegmentation, doc=KittiSegmentation.__doc__)


@dataclass(frozen=True, kw_only=True)
class KittiFinetune:
    """Fine-tune: the student, self-supervised on video with a pose network (monodepth2 minimum
    reprojection with auto-masking + SC-Depth geometry consistency and self-discovered mask)."""

    length: int = option(20, LENGTH_DOC, minimum=0)
    lr_step: int = option(15, LR_STEP_DOC, minimum=0)
    lr: float = option(1.0e-5, "Learning rate of the (pretrained) depth network.", exclusiveMinimum=0)
    pose_lr: float = option(1.0e-3, "Learning rate of the fresh pose network.", exclusiveMinimum=0)
    pose_warmup: float = option(0.5, "Fraction of the stage's steps at the start during which only the pose "
                                "network learns (the depth network frozen).", minimum=0, maximum=1)
    frame_ids: tuple[int, ...] = option((0, -1, 1), "Target frame and temporal neighbours.", minItems=2)
    stereo: bool = option(True, "The other camera is a source too (monodepth2's mono+stereo): it holds the "
                          "stereo scale and sees moving objects where they are; false = video only.")
    geometry_weight: float = option(0.1, "Weight of SC-Depth's geometry-consistency loss.", minimum=0)
    dynamic_mask: bool = option(True, "Weight the photometric errors by SC-Depth's self-discovered mask.")
    smoothness: float = option(1.0e-3, "Edge-aware smoothness weight.", minimum=0)
    segmentation: KittiSegmentation = option(
        factory=KittiSegmentation,
        doc=KittiSegmentation.__doc__ + " A student's head is kept (and trained on only when enabled); "
        "without one, enabled adds a fresh head.",
    )
    masking: KittiMasking = option(factory=KittiMasking, doc=KittiMasking.__doc__)
    pose_layers: Literal[18, 50] = option(18, "ResNet depth of the pose network.")
    pose_rotation: Literal["axis_angle", "euler"] = option(
        "axis_angle", "Rotation form: axis_angle (monodepth2) or euler (SC-Depth)."
    )
    pose_weights: str | None = option(None, POSE_WEIGHTS_DOC)


@dataclass(frozen=True, kw_only=True)
class KittiTrain:
    """Driving branch training: teacher -> student -> fine-tune (results/kitti/train/<stage>/).
    Depths are in stereo units as monodepth2's (x 5.4 = metres on KITTI)."""

    common: KittiCommon = option(factory=KittiCommon, doc="Settings shared by the stages.")
    teacher: KittiTeacher = option(factory=KittiTeacher, doc=KittiTeacher.__doc__)
    student: KittiStudent = option(factory=KittiStudent, doc=KittiStudent.__doc__)
    finetune: KittiFinetune = option(factory=KittiFinetune, doc=KittiFinetune.__doc__)

