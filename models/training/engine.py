"""The training loop shared by every stage of both branches.

A stage supplies networks (an ``nn.ModuleDict`` of the trainable ones), an objective
``(batch, nets) -> (loss, logs)`` and a dataset; the loop owns optimisation, schedules,
checkpoints, logs and resumption, and nothing else. Runs are step-deterministic: the batch of
step ``s`` and every random draw inside it depend only on ``(seed, s)``, so an interrupted job
resumed from its last checkpoint continues exactly as an uninterrupted one.

:func:`train` is the loop; its parts are :func:`build_optimizer` (parameter groups),
:func:`~models.training.checkpoint.resume`, :func:`train_step` (one update), :class:`RunLog`
(history, TensorBoard, progress) and :class:`NonFiniteGuard` (a blow-up stops the stage with
:class:`TrainingDiverged` instead of running on without updates). What a run writes is described
in ``checkpoint.py``; its history rows also carry ``grad_norm``, the total gradient norm of the
logged step before clipping.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

# checkpoint names are re-exported: importers use models.training.engine for all of them
from models.training.checkpoint import (
    RunFiles,
    config_digest,
    file_digest,
    load_checkpoint,
    resume,
    save_atomic,
    save_checkpoint,
)
from models.training.distributed import NoLog, Ranks, RankSampler, sync_batchnorm
from models.training.runlog import RunLog
from models.training.validation import BestKeeper, Validation, restore_best

__all__ = ["NonFiniteGuard", "Objective", "RunFiles", "RunLog", "Schedule", "StepSampler", "TrainingDiverged",
           "Validation", "build_optimizer", "config_digest", "file_digest", "load_checkpoint", "pick_device",
           "restore_best", "resume", "save_atomic", "train", "train_step"]

log = logging.getLogger(__name__)

Objective = Callable[[dict[str, Tensor], nn.ModuleDict], tuple[Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Schedule:
    """Optimisation schedule of a stage.

    Attributes:
        steps: optimiser steps in total.
        batch_size: items per step.
        lr: learning rate (Adam), or the cyclic maximum (SGD).
        optimizer: "adam" (driving references) or "sgd" (endoscopy reference, momentum 0.9).
        lr_milestones: steps at which the learning rate is multiplied by ``lr_gamma`` (StepLR).
        cyclic_min_lr: with SGD, the lower bound of the triangular cyclic schedule (the endoscopy
            reference: 1e-4 .. 1e-3, half cycle = ``cyclic_step`` steps); 0 disables it.
        clip_grad: gradient-norm clipping (the endoscopy reference: 10), 0 = none.
        checkpoint_every: steps between checkpoints (also written at the end).
        log_every: steps between history rows.
        workers: DataLoader worker processes (0 = load in the training process).
        lr_mult: ``(net name, factor)`` pairs: that network learns at ``factor`` x the rate
            (e.g. a fresh pose network beside a pretrained depth network).
        frozen_until: ``(net name, step)`` pairs: that network is neither updated nor in
            training mode (batch-norm statistics kept) before optimiser step ``step`` (a warm-up
            of the other networks, e.g. a fresh pose network on a pretrained depth network).
        max_nonfinite_steps: consecutive optimiser steps with a non-finite loss or gradient norm
            that are skipped before the stage stops with :class:`TrainingDiverged`; 0 = stop at
            the first.
    """

    steps: int
    batch_size: int
    lr: float = 1e-4
    optimizer: str = "adam"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    cyclic_min_lr: float = 0.0
    cyclic_step: int = 1000
    clip_grad: float = 0.0
    checkpoint_every: int = 100
    log_every: int = 10
    workers: int = 0
    lr_mult: tuple[tuple[str, float], ...] = ()
    frozen_until: tuple[tuple[str, int], ...] = ()
    max_nonfinite_steps: int = 5

    def frozen_at(self, step: int) -> set[str]:
        """Names of the networks frozen during optimiser step ``step``."""
        return {name for name, until in self.frozen_until if step < until}

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        if self.cyclic_min_lr > 0:  # triangular cyclic LR (Smith 2017), seed_methods §6.1
            cycle = math.floor(1 + step / (2 * self.cyclic_step))
            x = abs(step / self.cyclic_step - 2 * cycle + 1)
            return self.cyclic_min_lr + (self.lr - self.cyclic_min_lr) * max(0.0, 1 - x)
        return self.lr * self.lr_gamma ** sum(step >= m for m in self.lr_milestones)


class StepSampler(Sampler):
    """Yields ``(step, index)`` keys: batch ``s`` is a slice of a permutation of the dataset
    drawn from ``(seed, epoch)``, so any step's batch is known without replaying earlier ones."""

    def __init__(self, n_items: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        if n_items < 1:
            raise ValueError("the training split is empty")
        self.n, self.bs, self.seed, self.start, self.stop = n_items, batch_size, seed, start, stop

    def batch(self, step: int) -> list[tuple[int, int]]:
        first = step * self.bs
        keys = []
        for k in range(first, first + self.bs):
            epoch, pos = divmod(k, self.n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            keys.append((step, int(perm[pos])))
        return keys

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield self.batch(step)

    def __len__(self) -> int:
        return self.stop - self.start


def pick_device(prefer_cuda: bool = True) -> torch.device:
    """CUDA when usable (not merely when CUDA_VISIBLE_DEVICES is set), else CPU."""
    return torch.device("cuda") if prefer_cuda and torch.cuda.is_available() else torch.device("cpu")


def build_optimizer(nets: nn.ModuleDict, schedule: Schedule) -> torch.optim.Optimizer:
    """Fused Adam or SGD (momentum 0.9) over the parameters of ``nets`` that require gradients.

    One parameter group per network that has such parameters, in the order of ``nets``, with
    keys ``name`` and ``lr_mult`` (``schedule.lr_mult``, default 1); :func:`train_step` sets
    each group's rate to ``schedule.lr_at(step) * lr_mult`` and freezes networks by group.
    Raises ValueError when the schedule names a network that ``nets`` lacks.
    """
    mult = dict(schedule.lr_mult)
    unknown = (set(mult) | {n for n, _ in schedule.frozen_until}) - set(nets.keys())
    if unknown:
        raise ValueError(f"schedule names networks {sorted(unknown)} that the stage does not train "
                         f"({list(nets)})")
    trainable = {name: [p for p in net.parameters() if p.requires_grad] for name, net in nets.items()}
    groups = [{"params": ps, "name": name, "lr_mult": mult.get(name, 1.0)}
              for name, ps in trainable.items() if ps]
    if schedule.optimizer == "adam":
        # fused: one pass over each parameter (CPU and CUDA); 7.6 instead of 35 ms per step for
        # a ResNet-18 depth network on 2 CPU cores
        return torch.optim.Adam(groups, lr=schedule.lr, fused=True)
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=schedule.lr, momentum=0.9, fused=True)
    raise ValueError(f"unknown optimizer {schedule.optimizer!r}")


def _params(opt: torch.optim.Optimizer) -> dict[str, list[nn.Parameter]]:
    """Network name -> its trained parameters (the groups of :func:`build_optimizer`)."""
    return {group["name"]: group["params"] for group in opt.param_groups}


def _freeze(nets: nn.ModuleDict, opt: torch.optim.Optimizer, frozen: set[str]) -> None:
    """Frozen networks: no gradients (Adam skips them) and eval mode (BN statistics kept)."""
    params = _params(opt)
    for name, net in nets.items():
        net.train(name not in frozen)
        for p in params.get(name, ()):
            p.requires_grad_(name not in frozen)


def train_step(nets: nn.ModuleDict, opt: torch.optim.Optimizer, objective: Objective, batch: dict,
               step: int, schedule: Schedule, autocast: AbstractContextManager | None = None
               ) -> tuple[Tensor, dict[str, float]]:
    """Optimiser step ``step`` (0-based): its learning rate and frozen networks, the objective
    on ``batch`` (already on the networks' device) under ``autocast``, then the update.

    A non-finite loss or gradient norm skips the update (as the endoscopy reference does); the
    step still counts. Returns the objective's ``(loss, logs)``; :func:`train` uses
    :func:`_update`, which also returns the gradient norm.
    """
    loss, logs, _ = _update(nets, opt, objective, batch, step, schedule, autocast)
    return loss, logs


def _update(nets: nn.ModuleDict, opt: torch.optim.Optimizer, objective: Objective, batch: dict,
            step: int, schedule: Schedule, autocast: AbstractContextManager | None,
            ranks: Ranks | None = None) -> tuple[Tensor, dict[str, float], float]:
    """:func:`train_step`, returning ``(loss, logs, grad_norm)``: the total L2 norm of the trained
    parameters' gradients before clipping (nan when the loss is not finite). With ``ranks``
    (data-parallel, ``batch`` = this rank's share), the loss and logs returned are the means over
    the ranks and the gradients are averaged before the norm (models.training.distributed)."""
    for group in opt.param_groups:
        group["lr"] = schedule.lr_at(step) * group["lr_mult"]
    _freeze(nets, opt, schedule.frozen_at(step))
    with autocast or nullcontext():
        loss, logs = objective(batch, nets)
    opt.zero_grad(set_to_none=True)
    local = loss
    if ranks is not None:  # every decision below is taken on global values, alike on all ranks
        loss, logs = ranks.mean(local), ranks.mean_logs(logs)
    if not torch.isfinite(loss):
        log.warning("step %d: non-finite loss %s, update skipped", step, float(loss.detach()))
        return loss, logs, math.nan
    local.backward()
    if ranks is not None:
        ranks.average_gradients([p for ps in _params(opt).values() for p in ps if p.requires_grad])
    params = [p for ps in _params(opt).values() for p in ps if p.grad is not None]
    # one norm per step (clip_grad_norm_ would compute it again); a float: the step waits for it
    norm = torch.nn.utils.get_total_norm([p.grad for p in params]) if params else torch.zeros(())
    grad_norm = float(norm)
    if not math.isfinite(grad_norm):
        opt.zero_grad(set_to_none=True)
        log.warning("step %d: non-finite gradient norm %s (loss %s), update skipped", step, grad_norm,
                    float(loss.detach()))
        return loss, logs, grad_norm
    if schedule.clip_grad > 0:
        torch.nn.utils.clip_grads_with_norm_(params, schedule.clip_grad, norm)
    opt.step()
    return loss, logs, grad_norm


class TrainingDiverged(RuntimeError):
    """More than ``Schedule.max_nonfinite_steps`` optimiser steps in a row had a non-finite loss
    or gradient norm: :func:`train` stops without a checkpoint of that state."""


class NonFiniteGuard:
    """Counts the consecutive optimiser steps with a non-finite loss or gradient norm (their
    updates are skipped by :func:`train_step`); a finite step resets the count. The count starts
    at 0 in each process, a resumed run included."""

    def __init__(self, limit: int, steps: int) -> None:
        """``limit``: ``Schedule.max_nonfinite_steps``; ``steps``: the run's total steps."""
        self.limit, self.steps = limit, steps
        self.count = 0
        self.last_finite: tuple[int, float] | None = None  # (step, loss) of the last finite step

    def check(self, step: int, loss: float, grad_norm: float) -> None:
        """Count optimiser step ``step`` (0-based); raise :class:`TrainingDiverged` when it makes
        more than ``limit`` non-finite steps in a row."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.count, self.last_finite = 0, (step, loss)
            return
        self.count += 1
        if self.count <= self.limit:
            return
        last = ("no finite step in this run" if self.last_finite is None
                else f"last finite loss {self.last_finite[1]:.6g} at step {self.last_finite[0]}")
        raise TrainingDiverged(
            f"training diverged at step {step} (0-based; step {step + 1} of {self.steps}): {self.count} "
            f"consecutive optimiser steps with a non-finite loss or gradient norm (this one: loss {loss}, "
            f"gradient norm {grad_norm}); {last}. Lower the learning rate, or raise max_nonfinite_steps "
            f"(kitti.train.common / endoscopy.train.common; now {self.limit}) to skip more such steps in "
            "a row. No checkpoint of this state was written.")


def _due(done: int, every: int, steps: int) -> bool:
    """Whether a periodic action (log row, checkpoint) falls after ``done`` steps of ``steps``."""
    return done % every == 0 or done == steps


def train(nets: nn.ModuleDict, objective: Objective, dataset: Dataset, schedule: Schedule,
          out_dir: str | Path, *, seed: int, config: dict, device: torch.device | None = None,
          progress: bool = True, bf16: bool = True, channels_last: bool = False,
          validation: Validation | None = None) -> RunFiles:
    """Optimise ``nets`` on ``objective`` for ``schedule.steps`` steps, resuming if possible.

    In a process group of several ranks (``torchrun``, :mod:`models.training.distributed`) each
    rank trains on its share of every global batch of ``schedule.batch_size`` items and rank 0
    alone validates and writes; every rank returns after the last step.

    Args:
        nets: the trainable networks (frozen helpers such as a teacher live in the objective).
        objective: returns the scalar loss and floats to log, given a batch on ``device``.
        config: the stage configuration (JSON-able); its digest guards resumption.
        bf16: on CUDA, run the objective under bfloat16 autocast (False = fp32 throughout).
        channels_last: keep the networks' weights in channels-last memory format on the CPU
            too (always on CUDA); about 25 % faster for the endoscopy UNet and FC-DenseNet on
            CPU, no gain for the ResNet encoders (bench/bench_training.py).
        validation: validate every ``validation.every`` steps and at the last (history.csv
            gets its ``val_*`` columns), keeping the best step's weights in ``best.pt``
            (:mod:`models.training.validation`; :func:`restore_best` loads them).
    Returns:
        the run's files; the final checkpoint holds ``step == schedule.steps``.
    Raises:
        TrainingDiverged: more than ``schedule.max_nonfinite_steps`` steps in a row had a
            non-finite loss or gradient norm (:class:`NonFiniteGuard`); the checkpoint on disk
            is the last one written before, and a stage script writes no model.
    """
    device = device or pick_device()
    ranks = Ranks.current()
    main = ranks is None or ranks.main
    files = RunFiles(Path(out_dir))
    files.out_dir.mkdir(parents=True, exist_ok=True)
    if ranks is not None:
        sync_batchnorm(nets, device)
    nets.to(device)
    if device.type == "cuda" or channels_last:
        nets.to(memory_format=torch.channels_last)
    opt = build_optimizer(nets, schedule)
    digest = config_digest(config)
    start, rows = resume(files, nets, opt, digest, schedule.steps, objective)
    sampler = StepSampler(len(dataset), schedule.batch_size, seed, start, schedule.steps)
    if ranks is not None:
        sampler = RankSampler(sampler, schedule.batch_size, ranks)
        ranks.broadcast(nets)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=schedule.workers,
                        persistent_workers=False, pin_memory=device.type == "cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and bf16 else None
    run_log = RunLog(files, rows, start, schedule.steps, progress) if main else NoLog(rows)
    guard = NonFiniteGuard(schedule.max_nonfinite_steps, schedule.steps)
    keeper = BestKeeper(validation, files) if validation is not None and main else None
    if keeper is not None:  # a fresh run forgets the best step of an earlier one
        keeper.load_state_dict(load_checkpoint(files.checkpoint).get("best") if start else None)
    nets.train()
    try:
        for step, batch in enumerate(loader, start):
            torch.manual_seed(seed * 1_000_003 + step)  # every draw inside the step (tie noise, ...)
            if hasattr(objective, "start_step"):  # objectives with a schedule of their own (masking)
                objective.start_step(step)
            batch = _to(batch, device)
            loss, logs, grad_norm = _update(nets, opt, objective, batch, step, schedule, autocast, ranks)
            done, finite = step + 1, math.isfinite(float(loss.detach())) and math.isfinite(grad_norm)
            validate = validation is not None and finite and validation.due(done, schedule.steps)
            values = validation.run(nets) if validate and main else None  # others wait in the next step
            if _due(done, schedule.log_every, schedule.steps) or validate:
                columns = validation.columns(values) if validation is not None else {}
                run_log.add(done, loss, schedule.lr_at(step), grad_norm, {**logs, **columns})
            guard.check(step, float(loss.detach()), grad_norm)  # raises before any checkpoint of it
            if values is not None:
                keeper.update(done, values, nets)
            if main and _due(done, schedule.checkpoint_every, schedule.steps):
                save_checkpoint(files, nets, opt, step=done, digest=digest, schedule=asdict(schedule),
                                history=run_log.rows, objective=objective,
                                best=keeper.state_dict() if keeper is not None else None)
            run_log.tick()
    finally:
        for params in _params(opt).values():  # a stage shorter than a warm-up leaves nothing frozen
            for p in params:
                p.requires_grad_(True)
        run_log.close()
    if ranks is not None:
        ranks.barrier()  # rank 0's last checkpoint is written when any rank returns
    if start >= schedule.steps:
        log.info("%s already holds the final step %d", files.checkpoint, start)
    return files


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}
