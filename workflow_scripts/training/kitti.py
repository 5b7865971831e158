"""Assemble the driving branch's training stages from rule params and run them.

Bridges config (plain dicts from the rule's params) and files (splits, calibration, hints) to
the config-free library in ``models/``: networks, objectives, dataset, engine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.data.kitti import KittiDataOptions, KittiRawDataset, read_split
from models.training import kitti_objectives as ko
from models.training.engine import file_digest, pick_device, train
from models.training.stage import StageConfig, build_pose_net, load_model, save_model
from workflow_scripts.kitti.calib import load_rig
from workflow_scripts.util import InputDataError

log = logging.getLogger(__name__)


def intrinsics(raw_root: Path, dates: set[str]) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    """date -> (0-based K of the rectified left camera, native (H, W)) from the calibration."""
    out = {}
    for date in sorted(dates):
        rig = load_rig(Path(raw_root) / date)
        out[date] = (rig.K(2, zero_based=True), rig.image_size[2])
    return out


def photo_options(common: dict, section: dict, stereo: bool) -> ko.PhotoOptions:
    return ko.PhotoOptions(frame_ids=tuple(section.get("frame_ids", [0])), stereo=stereo,
                           automask=common["automask"], smoothness=section["smoothness"],
                           min_depth=common["min_depth"], max_depth=common["max_depth"],
                           convention=common["sampling"])


def build_stage(cfg: StageConfig, common: dict, previous: Path | None) -> tuple[nn.ModuleDict, object, bool]:
    """Networks to train, the objective, and whether items need the stereo frame."""
    opts = cfg.options
    if cfg.stage == "teacher":
        photo = photo_options(common, opts, stereo=True)
        nets = nn.ModuleDict({"depth": cfg.network.build()})
        if len(photo.frame_ids) > 1:
            nets["pose"] = build_pose_net(opts)
        objective = ko.TeacherObjective(ko.TeacherOptions(
            photo=photo, hints=opts["hints"], hint_variant=opts["hint_variant"],
            data_graft=opts["data_graft"], self_distillation=opts["self_distillation"]))
        return nets, objective, True
    teacher, meta = load_model(previous)
    if cfg.stage == "student":
        photo = photo_options(common, {"smoothness": 0.0}, stereo=False)
        nets = nn.ModuleDict({"depth": cfg.network.build()})
        return nets, ko.StudentObjective(teacher, photo, opts.get("eigen_lambda")), False
    if cfg.stage == "finetune":  # the student, self-supervised on video
        photo = photo_options(common, opts, stereo=False)
        nets = nn.ModuleDict({"depth": teacher.train().requires_grad_(True), "pose": build_pose_net(opts)})
        objective = ko.FinetuneObjective(ko.FinetuneOptions(
            photo=photo, geometry_weight=opts["geometry_weight"], dynamic_mask=opts["dynamic_mask"]))
        return nets, objective, False
    raise ValueError(f"unknown stage {cfg.stage!r}")


def pose_schedule(cfg: StageConfig, n_items: int) -> dict:
    """Schedule extras of the fine-tune: the fresh pose network's own learning rate and a
    warm-up (a fraction of the stage's steps) with the pretrained depth network frozen, so the
    pose network first learns translations in the depth network's scale instead of the depth
    network shrinking to the untrained pose network's near-zero translations."""
    opts = cfg.options
    if cfg.stage != "finetune":
        return {}
    steps = cfg.schedule(n_items).steps
    return {"lr_mult": (("pose", opts["pose_lr"] / cfg.lr),),
            "frozen_until": (("depth", round(opts["pose_warmup"] * steps)),)}


def run(cfg: StageConfig, common: dict, *, raw_root: Path, image_root: Path, image_ext: str,
        train_split: Path, hints_root: Path | None, previous: Path | None, out_model: Path,
        seed: int, threads: int) -> dict:
    """Train one stage and write ``out_model`` (and checkpoint/history beside it)."""
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    items = read_split(train_split)
    if not items:
        raise InputDataError(train_split, "the training split is empty",
                             "check the frame filter and the drives of the test split")
    nets, objective, stereo = build_stage(cfg, common, previous)
    if cfg.stage == "finetune":  # the fine-tuned network is the student's (loaded, not built)
        network = load_model(previous)[1]["network"]
        cfg = StageConfig(**{**cfg.as_dict(), "network": type(cfg.network)(**network)})
    data_opts = KittiDataOptions(
        height=cfg.size[0], width=cfg.size[1], frame_ids=tuple(cfg.options.get("frame_ids", [0])),
        stereo=stereo, hints_root=hints_root if cfg.stage == "teacher" and cfg.options.get("hints") else None,
        stereo_baseline=common["stereo_baseline"], augment=True, image_ext=image_ext)
    dataset = KittiRawDataset(Path(image_root), items, intrinsics(raw_root, {i.date for i in items}), data_opts,
                              seed=seed)
    schedule = cfg.schedule(len(items), **pose_schedule(cfg, len(items)))
    device = pick_device()
    log.info("%s/%s: %d items, %d steps at %s on %s", cfg.branch, cfg.stage, len(items), schedule.steps,
             cfg.size, device)
    config = {"stage": cfg.as_dict(), "common": common, "split": train_split.read_text(),
              "previous": file_digest(previous)}
    train(nets, objective, dataset, schedule, out_model.parent, seed=seed, config=config, device=device)
    save_model(nets.cpu(), out_model, cfg, schedule.steps, min_depth=common["min_depth"],
               max_depth=common["max_depth"], depth_kind="disp", stereo_baseline=common["stereo_baseline"],
               options=cfg.options)
    return {"steps": schedule.steps, "items": len(items)}
