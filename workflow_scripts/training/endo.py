"""The endoscopy branch's training stages, assembled from typed config sections and run.

teacher (UNet, SfM losses) -> student (FC-DenseNet57 learning the teacher's depth) -> fine-tune
(the student on the SfM losses again), seed_methods §6.2; every stage trains on the sequences of
the rule's inputs (the reference trains on its training patients; see docs/endoscopy.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from models.model_file import load_model, read_model_meta
from models.networks.spec import NetworkSpec
from models.training import endo_objectives as eo
from models.training.engine import Validation, file_digest, pick_device, train
from workflow_scripts.endo.dataset import EndoDataOptions, EndoPairDataset, EndoSequence
from workflow_scripts.endo.sparse import load_sfm_data
from workflow_scripts.training.endo_options import EndoCommon
from workflow_scripts.training.endo_validation import (
    MAX_MODE,
    METRICS,
    constant_baseline,
    load_val_set,
    validate_depth,
)
from workflow_scripts.training.stage import StageInputs, StagePlan, check_against_constant, save_stage_models
from workflow_scripts.util.options import to_plain

__all__ = ["run", "build_stage", "load_sequences"]
log = logging.getLogger(__name__)


def stage_plan(stage: str, common: EndoCommon, section, inputs: StageInputs) -> StagePlan:
    """The plan of a stage: size [] = the network size of sfm_data; the fine-tuned network is
    the student's (read from its model)."""
    size = tuple(common.size) or tuple(int(s) for s in load_sfm_data(inputs.sfm_data[0])["input_size"])
    network = (
        NetworkSpec(**read_model_meta(inputs.previous)["network"]) if stage == "finetune" else section.network
    )
    return StagePlan("endo", stage, common, section, size, network)


def load_sequences(
    sfm_data: tuple[Path, ...], frames: tuple[Path, ...], size: tuple[int, int] | None
) -> list[EndoSequence]:
    """Sequences named by their folder results/endo/<seq>/ (sfm_data and frames in the same order)."""
    return [EndoSequence(Path(s).parent.name, s, f, size) for s, f in zip(sfm_data, frames, strict=True)]


def sfm_options(section, common: EndoCommon, per_unit: int) -> eo.SfMLossOptions:
    return eo.SfMLossOptions(
        sfl_weight=section.sfl_weight,
        dcl_weight=section.dcl_weight,
        dcl_warmup_weight=section.dcl_warmup.weight,
        dcl_warmup_steps=section.dcl_warmup.length * per_unit,
        consistency=section.consistency,
        ssl_weight=section.ssl_weight,
        convention=common.sampling,
        flow_outlier_threshold=section.flow_outlier_threshold,
    )


def build_stage(plan: StagePlan, previous: Path | None, per_unit: int) -> tuple[nn.ModuleDict, object]:
    """Networks to train and the objective of a stage."""
    if plan.stage == "teacher":
        objective = eo.SfMObjective(sfm_options(plan.section, plan.common, per_unit))
        return nn.ModuleDict({"depth": plan.network.build()}), objective
    prev, _ = load_model(previous)
    if plan.stage == "student":
        objective = eo.DistillObjective(prev, plan.section.eigen_lambda, plan.section.loss)
        return nn.ModuleDict({"depth": plan.network.build()}), objective
    if plan.stage == "finetune":
        net = prev.train().requires_grad_(True)
        return nn.ModuleDict({"depth": net}), eo.SfMObjective(
            sfm_options(plan.section, plan.common, per_unit)
        )
    raise ValueError(f"unknown stage {plan.stage!r}")


def schedule_extras(plan: StagePlan, per_unit: int) -> dict:
    """Optimiser, cyclic learning rate (half cycle in the stage's unit) and clipping of a stage."""
    s = plan.section
    return {
        "optimizer": s.optimizer,
        "cyclic_min_lr": float(s.cyclic.min_lr),
        "cyclic_step": max(1, int(s.cyclic.step * per_unit)),
        "clip_grad": float(s.clip_grad),
    }


def run(
    stage: str, common: EndoCommon, section, inputs: StageInputs, out_model: Path, *, seed: int, threads: int
) -> dict:
    """Train one stage on the given sequences and write ``out_model`` (+ checkpoint, history)."""
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    plan = stage_plan(stage, common, section, inputs)
    sequences = load_sequences(inputs.sfm_data, inputs.frames, plan.size)
    data_opts = EndoDataOptions(
        size=plan.size,
        adjacent_range=tuple(common.adjacent_range),
        augment=section.augment,
        items_per_epoch=common.items_per_epoch,
        val_fraction=common.val_fraction if common.val_every else 0.0,
    )
    dataset = EndoPairDataset(sequences, data_opts, seed=seed)
    per_unit = plan.per_unit(len(dataset))
    nets, objective = build_stage(plan, inputs.previous, per_unit)
    schedule = plan.schedule(len(dataset), **schedule_extras(plan, per_unit))
    device = pick_device()
    log.info(
        "endo/%s: %d sequences (%s), %d items, %d steps at %s on %s",
        stage,
        len(sequences),
        ", ".join(s.name for s in sequences),
        len(dataset),
        schedule.steps,
        plan.size,
        device,
    )
    # the previous stage's weights are part of the configuration: a checkpoint trained from
    # another teacher / student is never resumed
    config = {
        "common": to_plain(common),
        "section": to_plain(section),
        "sequences": [str(p) for p in inputs.sfm_data],
        "previous": file_digest(inputs.previous),
    }
    validation = _validation(common, sequences, per_unit)
    train(
        nets,
        objective,
        dataset,
        schedule,
        out_model.parent,
        seed=seed,
        config=config,
        device=device,
        bf16=common.bf16,
        channels_last=common.channels_last,
        validation=validation,
    )
    meta = dict(
        branch="endo",
        stage=stage,
        network=plan.network,
        size=plan.size,
        steps=schedule.steps,
        depth_kind="depth",
        options=to_plain(section),
        sequences=[s.name for s in sequences],
        train_views={s.name: n for s, n in zip(sequences, dataset.n_train, strict=True)},
    )
    best = save_stage_models(nets, out_model, validation is not None, meta, log)
    if best:
        check_against_constant(best, validation, f"endo/{stage}", log,
                               "Its history.csv shows the validation over the steps (docs/endoscopy.md)")
    return {"steps": schedule.steps, "items": len(dataset), "sequences": [s.name for s in sequences],
            **({"best": best} if best else {})}


def _validation(common: EndoCommon, sequences: list[EndoSequence],
                per_unit: int) -> Validation | None:
    """The stage's validation on the held-out views (None when off or no sequence has any); its
    baseline is a constant depth's metrics on them."""
    if not common.val_every:
        return None
    val = load_val_set(sequences, common.val_fraction)
    if not val:
        log.warning("no held-out view has SfM sparse samples: no validation, model.pt = the last step")
        return None
    constant = constant_baseline(val)
    log.info("validation: a constant depth scores %s %.3f on these views", common.val_metric,
             constant[common.val_metric])
    return Validation(
        fn=lambda nets: validate_depth(nets, val),
        names=METRICS,
        every=common.val_every * per_unit,
        metric=common.val_metric,
        mode="max" if common.val_metric in MAX_MODE else "min",
        baseline=constant,
    )
