"""The training loop shared by every stage of both branches.

A stage supplies networks (an ``nn.ModuleDict`` of the trainable ones), an objective
``(batch, nets) -> (loss, logs)`` and a dataset; the loop owns optimisation, schedules,
checkpoints, logs and resumption, and nothing else. Runs are step-deterministic: the batch of
step ``s`` and every random draw inside it depend only on ``(seed, s)``, so an interrupted job
resumed from its last checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

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


def config_digest(config: dict) -> str:
    """Short hash of a stage configuration, stored in checkpoints: a checkpoint of another
    configuration is never resumed."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | Path | None) -> str | None:
    """SHA-256 of a file's bytes (e.g. the previous stage's model, so that a checkpoint made
    from another teacher is never resumed); None for no file."""
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a killed job never leaves a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def pick_device(prefer_cuda: bool = True) -> torch.device:
    """CUDA when usable (not merely when CUDA_VISIBLE_DEVICES is set), else CPU."""
    return torch.device("cuda") if prefer_cuda and torch.cuda.is_available() else torch.device("cpu")


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


@dataclass
class RunFiles:
    """Where a stage writes: ``checkpoint.pt`` (resumable state), ``history.csv``, ``tb/``."""

    out_dir: Path

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def history(self) -> Path:
        return self.out_dir / "history.csv"


def train(nets: nn.ModuleDict, objective: Objective, dataset: Dataset, schedule: Schedule,
          out_dir: str | Path, *, seed: int, config: dict, device: torch.device | None = None,
          progress: bool = True, bf16: bool = True, channels_last: bool = False) -> RunFiles:
    """Optimise ``nets`` on ``objective`` for ``schedule.steps`` steps, resuming if possible.

    Args:
        nets: the trainable networks (frozen helpers such as a teacher live in the objective).
        objective: returns the scalar loss and floats to log, given a batch on ``device``.
        config: the stage configuration (JSON-able); its digest guards resumption.
        bf16: on CUDA, run the objective under bfloat16 autocast (False = fp32 throughout).
        channels_last: keep the networks' weights in channels-last memory format on the CPU
            too (always on CUDA); about 25 % faster for the endoscopy UNet and FC-DenseNet on
            CPU, no gain for the ResNet encoders (bench/bench_training.py).
    Returns:
        the run's files; the final checkpoint holds ``step == schedule.steps``.
    """
    device = device or pick_device()
    files = RunFiles(Path(out_dir))
    files.out_dir.mkdir(parents=True, exist_ok=True)
    nets.to(device)
    if device.type == "cuda" or channels_last:
        nets.to(memory_format=torch.channels_last)
    mult = dict(schedule.lr_mult)
    unknown = (set(mult) | {n for n, _ in schedule.frozen_until}) - set(nets.keys())
    if unknown:
        raise ValueError(f"schedule names networks {sorted(unknown)} that the stage does not train ({list(nets)})")
    trainable = {name: [p for p in net.parameters() if p.requires_grad] for name, net in nets.items()}
    params = [p for ps in trainable.values() for p in ps]
    groups = [{"params": ps, "name": name, "lr_mult": mult.get(name, 1.0)} for name, ps in trainable.items() if ps]
    if schedule.optimizer == "adam":
        # fused: one pass over each parameter (CPU and CUDA); 7.6 instead of 35 ms per step for
        # a ResNet-18 depth network on 2 CPU cores
        opt: torch.optim.Optimizer = torch.optim.Adam(groups, lr=schedule.lr, fused=True)
    elif schedule.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=schedule.lr, momentum=0.9, fused=True)
    else:
        raise ValueError(f"unknown optimizer {schedule.optimizer!r}")

    digest, start, rows = config_digest(config), 0, []
    if files.checkpoint.exists():
        state = load_checkpoint(files.checkpoint)
        if int(state.get("step", 0)) >= schedule.steps:
            # a finished run being run again: forced (-R), or its code or inputs changed
            log.info("%s holds a finished run: training again from step 0", files.checkpoint)
        elif state.get("digest") == digest:
            nets.load_state_dict(state["nets"])
            opt.load_state_dict(state["optimizer"])
            start, rows = int(state["step"]), list(state.get("history", []))
            log.info("resuming from %s at step %d", files.checkpoint, start)
        else:
            log.warning("ignoring %s: written for another configuration", files.checkpoint)
    # history.csv restarts from the checkpoint's rows: rows an interrupted run logged after
    # its last checkpoint are dropped (they are logged again), a deleted file is rewritten
    _write_history(files.history, rows)

    writer = _tensorboard(files.out_dir / "tb")
    sampler = StepSampler(len(dataset), schedule.batch_size, seed, start, schedule.steps)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=schedule.workers,
                        persistent_workers=False, pin_memory=device.type == "cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and bf16 else _nullcontext()
    bar = _progress(schedule.steps, start, progress)
    nets.train()
    t0, step = time.perf_counter(), start
    for step, batch in enumerate(loader, start):
        torch.manual_seed(seed * 1_000_003 + step)  # every draw inside the step (tie noise, ...)
        frozen = schedule.frozen_at(step)
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(step) * group["lr_mult"]
        for name, net in nets.items():  # frozen: no gradients (Adam skips them), BN statistics kept
            net.train(name not in frozen)
            for p in trainable[name]:
                p.requires_grad_(name not in frozen)
        with autocast:
            loss, logs = objective(_to(batch, device), nets)
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            if schedule.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(params, schedule.clip_grad)
            opt.step()
        else:  # as the endoscopy reference: skip the update, keep counting steps
            log.warning("step %d: non-finite loss %s, update skipped", step, float(loss.detach()))
        done = step + 1
        if done % schedule.log_every == 0 or done == schedule.steps:
            row = {"step": done, "loss": float(loss.detach()), "lr": schedule.lr_at(step),
                   "seconds": round(time.perf_counter() - t0, 3), **logs}
            rows.append(row)
            _append_history(files.history, row)
            for key, value in row.items():
                if key != "step":
                    writer.add_scalar(key, value, done)
        if done % schedule.checkpoint_every == 0 or done == schedule.steps:
            save_atomic({"nets": nets.state_dict(), "optimizer": opt.state_dict(), "step": done,
                         "digest": digest, "schedule": asdict(schedule), "history": rows}, files.checkpoint)
        bar.update(1)
    for p in params:  # a stage shorter than a warm-up leaves nothing frozen behind
        p.requires_grad_(True)
    bar.close()
    writer.close()
    if start >= schedule.steps:
        log.info("%s already holds the final step %d", files.checkpoint, start)
    return files


def _write_history(path: Path, rows: list[dict]) -> None:
    """Rewrite ``path`` atomically with ``rows`` (none: remove it)."""
    path.unlink(missing_ok=True)
    if rows:
        tmp = path.with_name(f".{path.name}.tmp")
        for row in rows:
            _append_history(tmp, row)
        os.replace(tmp, path)


def _append_history(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class _NoWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time
        return _NoWriter()
    return SummaryWriter(str(folder))


def _progress(total: int, start: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", mininterval=5.0)
