"""The driving branch's training stages, assembled from typed config sections and run.

Bridges the config (``kitti.train``, see :mod:`workflow_scripts.training.options`) and files
(split list, calibration, hints) to the config-free library in ``models/``: networks,
objectives, engine. teacher (stereo + depth hints) -> student (distillation) -> fine-tune
(video with a pose network), seed_methods §6.4-6.7.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from models.losses.semantic import SEG_CLASS_WEIGHTS, class_weights_from_frequencies
from models.model_file import load_model, read_model_meta
from models.networks.segmentation import CITYSCAPES_CLASSES
from models.networks.spec import NetworkSpec, build_pose_net
from models.training import kitti_objectives as ko
from models.training.engine import Validation, file_digest, pick_device, train
from models.training.semantic import JointSegmentation, MaskingSchedule, MovingMasker
from workflow_scripts.kitti import cityscapes as cs
from workflow_scripts.kitti.dataset import KittiDataOptions, KittiRawDataset, hint_folders, intrinsics
from workflow_scripts.kitti.evaluate import METRICS
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.training.kitti_validation import (
    MAX_MODE,
    constant_baseline,
    load_val_set,
    validate_depth,
)
from workflow_scripts.training.options import KittiCommon
from workflow_scripts.training.stage import StageInputs, StagePlan, check_against_constant, save_stage_models
from workflow_scripts.util import InputDataError
from workflow_scripts.util.options import to_plain

__all__ = ["run", "build_stage", "photo_options"]
log = logging.getLogger(__name__)
POSE_FORWARD_MIN = 0.9  # the cosine of a driving camera's translation to its optical axis
NOT_LEARNT_HINT = (
    "Its history.csv shows the validation over the steps and, on monocular video, the pose network's "
    "translation and translation_forward (docs/driving.md, SGDepth, why monocular training from "
    "scratch fails)"
)


def photo_options(
    common: KittiCommon, frame_ids: tuple[int, ...], smoothness: float, stereo: bool
) -> ko.PhotoOptions:
    return ko.PhotoOptions(
        frame_ids=tuple(frame_ids),
        stereo=stereo,
        automask=common.automask,
        smoothness=smoothness,
        min_depth=common.min_depth,
        max_depth=common.max_depth,
        convention=common.sampling,
    )


def _finetuned_net(previous: Path, network: NetworkSpec) -> nn.Module:
    """The student's depth network to fine-tune; with a segmentation head added when ``network``
    asks for one and the student has none (its other weights kept)."""
    student, _ = load_model(previous)
    if network.segmentation and not getattr(student, "has_segmentation", False):
        net = network.build()
        missing, unexpected = net.load_state_dict(student.state_dict(), strict=False)
        if unexpected or any(not k.startswith("seg_decoder.") for k in missing):
            raise ValueError(f"{previous}: the student's weights do not fit {network}")
        student = net
    return student.train().requires_grad_(True)


def _with_semantics(plan: StagePlan, nets: nn.ModuleDict, objective, steps: int,
                    labelled: cs.CityscapesDataset | None):
    """SGDepth's additions to a stage's objective: the masking of moving objects (a video stage) and
    the joint segmentation loss (on ``labelled``)."""
    s, net = plan.section, nets["depth"]
    masking = getattr(s, "masking", None)
    if masking is not None and masking.enabled:
        if not getattr(net, "has_segmentation", False):
            raise ValueError(f"kitti.train.{plan.stage}.masking needs a segmentation head: enable "
                             f"kitti.train.{plan.stage}.segmentation (or the student's)")
        objective.masker = MovingMasker(MaskingSchedule.for_stage(
            steps, masking.start, masking.periods, masking.schedule == "linear", masking.percent))
    seg = s.segmentation
    if seg.enabled:
        scales = (seg.grad_scale_depth, seg.grad_scale_segmentation)
        weights = None
        if seg.class_weights == "sgdepth":
            weights = SEG_CLASS_WEIGHTS
        elif seg.class_weights == "frequency":
            freq = cs.class_frequencies(labelled.pairs)
            weights = class_weights_from_frequencies(freq).tolist()
            present = [f"{n} {w:.2f}" for n, w, f in zip(cs.TRAIN_CLASSES, weights, freq, strict=True) if f]
            log.info("segmentation class weights from %d labelled images: %s", len(labelled),
                     ", ".join(present))
        # the labelled images of a step are a global count, like the depth batch: each of the
        # data-parallel processes takes its share (DDP averages the processes' gradients)
        ranks = plan.common.processes * plan.common.nodes
        if seg.batch_size % ranks:
            raise ValueError(
                f"kitti.train.{plan.stage}.segmentation.batch_size {seg.batch_size} does not split over "
                f"the {ranks} processes (processes x nodes): set it to a multiple of {ranks}, or 0 (the "
                "depth batch)")
        objective = JointSegmentation(objective, seg.weight, scales, class_weights=weights,
                                      batch_size=seg.batch_size // ranks)
    return objective


def build_stage(plan: StagePlan, previous: Path | None, steps: int = 0,
                labelled: cs.CityscapesDataset | None = None) -> tuple[nn.ModuleDict, object, bool]:
    """Networks to train, the objective, and whether items need the stereo frame
    (``labelled``: the images of the segmentation branch, when the stage has one)."""
    nets, objective, stereo = _build_stage(plan, previous)
    return nets, _with_semantics(plan, nets, objective, steps, labelled), stereo


def _build_stage(plan: StagePlan, previous: Path | None) -> tuple[nn.ModuleDict, object, bool]:
    s, common = plan.section, plan.common
    if plan.stage == "teacher":  # stereo and/or video; options checked by KittiTeacher
        photo = photo_options(common, s.frame_ids, s.smoothness, stereo=s.stereo)
        nets = nn.ModuleDict({"depth": plan.network.build()})
        if len(photo.frame_ids) > 1:
            nets["pose"] = build_pose_net(s.pose_layers, s.pose_rotation, s.pose_weights)
        if s.loss == "sc_depth":  # SC-Depth v1 from scratch (ImageNet weights) on monocular video
            opts = ko.ScDepthOptions(photo=photo, geometry_weight=s.geometry_weight)
            return nets, ko.ScDepthObjective(opts), False
        objective = ko.TeacherObjective(
            ko.TeacherOptions(
                photo=photo,
                hints=s.hints,
                hint_variant=s.hint_variant,
                data_graft=s.data_graft,
                self_distillation=s.self_distillation,
            )
        )
        return nets, objective, s.stereo
    if plan.stage == "student":
        teacher, _ = load_model(previous)
        photo = photo_options(common, (0,), 0.0, stereo=False)
        nets = nn.ModuleDict({"depth": plan.network.build()})
        return nets, ko.StudentObjective(teacher, photo, s.eigen_lambda, s.loss), False
    if plan.stage == "finetune":  # the student, self-supervised on video
        photo = photo_options(common, s.frame_ids, s.smoothness, stereo=s.stereo)
        nets = nn.ModuleDict(
            {
                "depth": _finetuned_net(previous, plan.network),
                "pose": build_pose_net(s.pose_layers, s.pose_rotation, s.pose_weights),
            }
        )
        objective = ko.FinetuneObjective(
            ko.FinetuneOptions(photo=photo, geometry_weight=s.geometry_weight, dynamic_mask=s.dynamic_mask)
        )
        return nets, objective, s.stereo
    raise ValueError(f"unknown stage {plan.stage!r}")


def pose_schedule(plan: StagePlan, n_items: int) -> dict:
    """Schedule extras of the fine-tune: the fresh pose network's own learning rate and a
    warm-up (a fraction of the stage's steps) with the pretrained depth network frozen, so the
    pose network first learns translations in the depth network's scale instead of the depth
    network shrinking to the untrained pose network's near-zero translations. A video teacher
    gets its pose network's own rate when it sets ``pose_lr``."""
    if plan.stage == "teacher" and plan.section.pose_lr is not None:  # checked: it has temporal frames
        return {"lr_mult": (("pose", plan.section.pose_lr / plan.section.lr),)}
    if plan.stage != "finetune":
        return {}
    s = plan.section
    steps = plan.schedule(n_items).steps
    return {
        "lr_mult": (("pose", s.pose_lr / s.lr),),
        "frozen_until": (("depth", round(s.pose_warmup * steps)),),
    }


def stage_plan(stage: str, common: KittiCommon, section, previous: Path | None) -> StagePlan:
    """The plan of a stage; the fine-tuned network is the student's (read from its model)."""
    network = section.network if hasattr(section, "network") else None
    if stage == "finetune":
        network = NetworkSpec(**read_model_meta(previous)["network"])
    if section.segmentation.enabled:
        network = dataclasses.replace(network, segmentation=CITYSCAPES_CLASSES)
    return StagePlan("kitti", stage, common, section, tuple(common.size), network)


def labelled_images(section, inputs: StageInputs, items, size: tuple[int, int], seed: int):
    """The labelled images of a stage's segmentation branch (None without one)."""
    if not section.segmentation.enabled:
        return None
    if inputs.labels is None:
        raise InputDataError(
            Path("config.yaml"),
            "a segmentation branch is enabled (kitti.train.<stage>.segmentation.enabled) but no labelled "
            "images are configured",
            "set kitti.train.common.labels to a Cityscapes-format folder (leftImg8bit/, "
            "gtFine/*_labelIds.png), or disable the segmentation",
        )
    drives = {Path(i.folder).name for i in items}
    pairs = cs.training_pairs(inputs.labels, inputs.labels_split, drives)
    log.info("segmentation: %d labelled images in %s", len(pairs), inputs.labels)
    return cs.CityscapesDataset(pairs, size, augment=section.segmentation.scale_augment, seed=seed)


def run(
    stage: str, common: KittiCommon, section, inputs: StageInputs, out_model: Path, *, seed: int, threads: int
) -> dict:
    """Train one stage and write ``out_model`` (and checkpoint.pt, history.csv, tb/ beside it)."""
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    items = read_split(inputs.split)
    if not items:
        raise InputDataError(
            inputs.split,
            "the training split is empty",
            "check the frame filter and the drives of the test split",
        )
    plan = stage_plan(stage, common, section, inputs.previous)
    steps = plan.schedule(len(items)).steps
    labelled = labelled_images(section, inputs, items, plan.size, seed)
    nets, objective, stereo = build_stage(plan, inputs.previous, steps, labelled)
    use_hints = stage == "teacher" and section.hints
    data_opts = KittiDataOptions(
        height=plan.size[0],
        width=plan.size[1],
        frame_ids=tuple(getattr(section, "frame_ids", (0,))),
        stereo=stereo,
        hints=hint_folders(list(inputs.hints)) if use_hints else None,
        stereo_baseline=common.stereo_baseline,
        augment=True,
        image_ext=inputs.image_ext,
    )
    dataset = KittiRawDataset(
        inputs.image_root, items, intrinsics(inputs.raw_root, {i.date for i in items}), data_opts, seed=seed
    )
    if labelled is not None:
        dataset = cs.WithLabelledImages(dataset, labelled, seed)
    schedule = plan.schedule(len(items), **pose_schedule(plan, len(items)))
    device = pick_device()
    log.info("kitti/%s: %d items, %d steps at %s on %s", stage, len(items), schedule.steps, plan.size, device)
    # the previous stage's weights are part of the configuration: a checkpoint trained from
    # another teacher / student is never resumed
    config = {
        "common": to_plain(common),
        "section": to_plain(section),
        "split": inputs.split.read_text(),
        "previous": file_digest(inputs.previous),
    }
    warmup = dict(schedule.frozen_until).get("depth", 0)  # the depth net learns from this step
    validation = _validation(common, inputs, plan, plan.per_unit(len(items)), warmup)
    files = train(nets, objective, dataset, schedule, out_model.parent, seed=seed, config=config,
                  device=device, validation=validation)
    pose = (
        {"pose": {"layers": section.pose_layers, "rotation": section.pose_rotation}} if "pose" in nets else {}
    )
    meta = dict(branch="kitti", stage=stage, network=plan.network, size=plan.size, steps=schedule.steps,
                min_depth=common.min_depth, max_depth=common.max_depth, depth_kind="disp",
                stereo_baseline=common.stereo_baseline, options=to_plain(section), **pose)
    best = save_stage_models(nets, out_model, validation is not None, meta, log)
    if best:
        check_against_constant(best, validation, f"kitti/{stage}", log, NOT_LEARNT_HINT)
    if "pose" in nets and not stereo:  # with the stereo pair, the depth does not rest on the pose
        check_pose_direction(files.history, stage)
    return {"steps": schedule.steps, "items": len(items), **({"best": best} if best else {})}


def check_pose_direction(history: Path, stage: str) -> float | None:
    """The mean ``translation_forward`` (the cosine of the pose network's translations to the
    optical axis, :func:`models.training.kitti_objectives.pose_logs`) over the last quarter of the
    logged steps of ``history`` (a stage's history.csv), with a warning when it is below
    :data:`POSE_FORWARD_MIN`: a driving camera moves along its optical axis, and on monocular
    video a pose network that learnt a sideways motion leaves a depth that is not right. None
    without the column or the file (a stage without a pose network; a data-parallel rank other
    than 0)."""
    if not history.is_file():
        return None
    values = pd.read_csv(history).get("translation_forward", pd.Series(dtype=float)).dropna().to_numpy()
    if not len(values):
        return None
    forward = float(values[-max(1, len(values) // 4):].mean())
    if forward < POSE_FORWARD_MIN:
        log.warning(
            "kitti/%s: the pose network's translations end at a mean cosine of %.2f to the optical axis "
            "(translation_forward in %s; a driving camera moves along it, about 1): it has explained the "
            "forward motion as a sideways one, and the depth is not to be trusted. Monocular training "
            "from scratch does this on small data (docs/driving.md, SGDepth): start from ImageNet "
            "weights for both encoders (network.weights, pose_weights), train longer, or keep the stereo "
            "pair", stage, forward, history)
    return forward


def _validation(common: KittiCommon, inputs: StageInputs, plan: StagePlan, per_unit: int,
                first: int) -> Validation | None:
    """The stage's validation on the val list (None when off or the list is empty), from step
    ``first`` on (the end of a fine-tune's pose warm-up: before it the depth network is the
    student's, and the fine-tune's model is one it trained); its baseline is a constant depth's
    metrics on the same frames."""
    if not common.val_every or inputs.val_split is None:
        return None
    val = load_val_set(inputs.val_split, inputs.image_root, inputs.raw_root, inputs.image_ext, plan.size,
                       common.val_frames)
    if val is None:
        log.warning("%s is empty: no validation, model.pt = the last step", inputs.val_split)
        return None
    constant = constant_baseline(val)
    log.info("validation: a constant depth scores %s %.3f on these frames", common.val_metric,
             constant[common.val_metric])
    return Validation(
        fn=lambda nets: validate_depth(nets, val, common.min_depth, common.max_depth),
        names=METRICS,
        every=common.val_every * per_unit,
        metric=common.val_metric,
        mode="max" if common.val_metric in MAX_MODE else "min",
        first=first,
        baseline=constant,
    )
