"""Assemble the endoscopy branch's training stages from rule params and run them.

teacher (UNet, SfM losses) -> student (FC-DenseNet57 learning the teacher's depth) -> fine-tune
(the student on the SfM losses again), seed_methods §6.2; all stages train on every sequence of
the rule's inputs (the reference trains on its training patients; see README).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.data.endo import EndoDataOptions, EndoPairDataset, EndoSequence
from models.training import endo_objectives as eo
from models.training.engine import file_digest, pick_device, train
from models.training.stage import NetworkSpec, StageConfig, load_model, save_model
from workflow_scripts.endo.sparse import load_sfm_data

log = logging.getLogger(__name__)


def stage_config(stage: str, preset: dict, section: dict, sfm_data: list[Path]) -> StageConfig:
    """StageConfig of an endoscopy stage; preset size [] = the network size of sfm_data."""
    preset = dict(preset)
    if not preset.get("size"):
        preset["size"] = [int(s) for s in load_sfm_data(sfm_data[0])["input_size"]]
    return StageConfig.from_params("endo", stage, preset, section)


def data_options(cfg: StageConfig, preset: dict, augment: bool) -> EndoDataOptions:
    return EndoDataOptions(size=cfg.size, adjacent_range=tuple(preset["adjacent_range"]), augment=augment,
                           items_per_epoch=preset.get("items_per_epoch", 0))


def load_sequences(sfm_data: list[Path], frames: list[Path],
                   size: tuple[int, int] | None) -> list[EndoSequence]:
    """Sequences named by their folder results/endo/<seq>/ (sfm_data and frames in the same order)."""
    return [EndoSequence(Path(s).parent.name, s, f, size) for s, f in zip(sfm_data, frames, strict=True)]


def sfm_options(opts: dict, common: dict, per_unit: int) -> eo.SfMLossOptions:
    return eo.SfMLossOptions(
        sfl_weight=opts["sfl_weight"], dcl_weight=opts["dcl_weight"],
        dcl_warmup_weight=opts["dcl_warmup"]["weight"],
        dcl_warmup_steps=opts["dcl_warmup"]["length"] * per_unit,
        consistency=opts["consistency"], ssl_weight=opts["ssl_weight"], convention=common["sampling"])


def build_stage(cfg: StageConfig, common: dict, previous: Path | None,
                per_unit: int) -> tuple[nn.ModuleDict, object]:
    """Networks to train and the objective of a stage."""
    opts = cfg.options
    if cfg.stage == "teacher":
        objective = eo.SfMObjective(sfm_options(opts, common, per_unit))
        return nn.ModuleDict({"depth": cfg.network.build()}), objective
    prev, _ = load_model(previous)
    if cfg.stage == "student":
        objective = eo.DistillObjective(prev, opts.get("eigen_lambda"))
        return nn.ModuleDict({"depth": cfg.network.build()}), objective
    if cfg.stage == "finetune":
        net = prev.train().requires_grad_(True)
        return nn.ModuleDict({"depth": net}), eo.SfMObjective(sfm_options(opts, common, per_unit))
    raise ValueError(f"unknown stage {cfg.stage!r}")


def schedule_extras(cfg: StageConfig, per_unit: int) -> dict:
    """Optimiser, cyclic learning rate (half cycle in the preset's unit) and clipping of a stage."""
    o = cfg.options
    cyclic = o.get("cyclic") or {}
    return {"optimizer": o["optimizer"], "cyclic_min_lr": float(cyclic.get("min_lr", 0.0)),
            "cyclic_step": max(1, int(cyclic.get("step", 1) * per_unit)), "clip_grad": float(o["clip_grad"])}


def run(train_params: dict, stage: str, *, sfm_data: list[Path], frames: list[Path], previous: Path | None,
        out_model: Path, seed: int, threads: int) -> dict:
    """Train one stage on the given sequences and write ``out_model`` (+ checkpoint, history)."""
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    preset, section, common = train_params["preset"], train_params["section"], train_params["common"]
    cfg = stage_config(stage, preset, section, sfm_data)
    if cfg.stage == "finetune":  # the fine-tuned network is the student's (loaded, not built)
        cfg = StageConfig(**{**cfg.as_dict(), "network": NetworkSpec(**load_model(previous)[1]["network"])})
    sequences = load_sequences(sfm_data, frames, cfg.size)
    data_opts = data_options(cfg, preset, cfg.options.get("augment", True))
    dataset = EndoPairDataset(sequences, data_opts, seed=seed)
    per_unit = -(-len(dataset) // cfg.batch_size) if cfg.unit == "epochs" else 1
    nets, objective = build_stage(cfg, common, previous, per_unit)
    schedule = cfg.schedule(len(dataset), **schedule_extras(cfg, per_unit))
    device = pick_device()
    log.info("endo/%s: %d sequences (%s), %d items, %d steps at %s on %s", stage, len(sequences),
             ", ".join(s.name for s in sequences), len(dataset), schedule.steps, cfg.size, device)
    # the previous stage's weights are part of the configuration: a checkpoint trained from
    # another teacher / student is never resumed
    config = {"stage": cfg.as_dict(), "common": common, "preset": preset,
              "sequences": [str(p) for p in sfm_data],
              "previous": file_digest(previous)}
    train(nets, objective, dataset, schedule, out_model.parent, seed=seed, config=config, device=device,
          bf16=common.get("bf16", True), channels_last=common.get("channels_last", False))
    save_model(nets.cpu(), out_model, cfg, schedule.steps, depth_kind="depth", options=cfg.options,
               sequences=[s.name for s in sequences])
    return {"steps": schedule.steps, "items": len(dataset), "sequences": [s.name for s in sequences]}


def predict(model_path: Path, sfm_data: Path, frames: Path, *, threads: int = 1, batch_size: int = 8) -> dict:
    """Depth of every registered view of a sequence, in the sequence's SfM world units.

    The network runs at its training size; its raw depth is resized (bilinear) to the network
    size of sfm_data, rescaled per frame to the frame's SfM sparse depths (the reference's
    depth-scaling layer) and multiplied by global_scale, so that with ``cam_from_world`` the
    per-frame clouds fuse. Returns the arrays of ``depth.npz`` (see rule predict_endo_depth).
    """
    import torch.nn.functional as F

    from models.inference import endo_depth_in_sfm_units, predict_endo_raw
    from workflow_scripts.endo.sparse import sparse_depth

    torch.set_num_threads(max(1, threads))
    net, meta = load_model(model_path)
    seq = EndoSequence(Path(sfm_data).parent.name, sfm_data, frames, (meta["height"], meta["width"]))
    d = seq.data
    colors = torch.stack([seq.color(v) for v in range(seq.n_views)])
    raw = predict_endo_raw(net, colors, torch.from_numpy(seq.mask[None] / 255.0).float(), pick_device(),
                           batch_size)
    hw = tuple(int(s) for s in d["input_size"])
    raw = F.interpolate(raw[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0].clamp(min=1e-6)
    sparse = [sparse_depth(d, v) for v in range(seq.n_views)]
    valid = (d["mask"] > 0.9 * 255).astype(np.uint8)
    depth, scales = endo_depth_in_sfm_units(raw, torch.from_numpy(np.stack([s[0] for s in sparse])),
                                            torch.from_numpy(np.stack([s[1] for s in sparse])),
                                            torch.from_numpy(valid), seq.global_scale)
    return {"depth": depth.numpy().astype(np.float32),
            "frame_indexes": d["view_indexes"].astype(np.int64), "K": d["K"].astype(np.float64),
            "mask": valid, "cam_from_world": d["cam_from_world"],
            "frame_scales": scales.numpy(), "global_scale": d["global_scale"],
            "units": "sfm", "stage": str(meta["stage"]), "sequence": seq.name}
