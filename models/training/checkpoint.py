"""What a training run keeps on disk, and how an interrupted run picks it up again.

A stage's output folder (:class:`RunFiles`) holds ``checkpoint.pt``::

    {"nets": nets.state_dict(), "optimizer": opt.state_dict(),
     "step": int (optimiser steps done), "digest": config_digest(config),
     "schedule": asdict(schedule), "history": [row, ...] (the rows of history.csv so far),
     "objective": objective.state_dict() (only for objectives with a state: the masking's),
     "best": {"step", "value"} (only for validated runs; the weights are in best.pt)}

and ``history.csv`` (one row per logged step: ``step, loss, lr, grad_norm, seconds``, the
objective's logs and, for validated runs, ``val_<metric>`` columns). Every file is written
atomically (temporary file, then rename).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


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


def save_checkpoint(files: RunFiles, nets: nn.ModuleDict, opt: torch.optim.Optimizer, *, step: int,
                    digest: str, schedule: dict, history: list[dict], objective: object = None,
                    best: dict | None = None) -> None:
    """Write ``checkpoint.pt`` (format above) after ``step`` optimiser steps; an objective with a
    ``state_dict`` (e.g. the masking's IoU log) is saved with it, and ``best`` (the best validated
    step and value, :class:`models.training.validation.BestKeeper`) as "best"."""
    extra = {"objective": objective.state_dict()} if hasattr(objective, "state_dict") else {}
    if best is not None:
        extra["best"] = best
    save_atomic({"nets": nets.state_dict(), "optimizer": opt.state_dict(), "step": step,
                 "digest": digest, "schedule": schedule, "history": history, **extra}, files.checkpoint)


def resume(files: RunFiles, nets: nn.ModuleDict, opt: torch.optim.Optimizer, digest: str,
           steps: int, objective: object = None) -> tuple[int, list[dict]]:
    """Restore ``nets`` and ``opt`` from an unfinished checkpoint of the same configuration.

    Args:
        digest: ``config_digest`` of this run's configuration.
        steps: the run's total optimiser steps.
    Returns:
        ``(start, rows)``: the first step to run and the history rows logged before it;
        ``(0, [])`` (nothing restored) without a checkpoint, for a finished one (a run forced
        again or with changed code or inputs) and for one of another configuration.
    """
    if not files.checkpoint.exists():
        return 0, []
    state = load_checkpoint(files.checkpoint)
    if int(state.get("step", 0)) >= steps:
        log.info("%s holds a finished run: training again from step 0", files.checkpoint)
        return 0, []
    if state.get("digest") != digest:
        log.warning("ignoring %s: written for another configuration", files.checkpoint)
        return 0, []
    nets.load_state_dict(state["nets"])
    opt.load_state_dict(state["optimizer"])
    if hasattr(objective, "load_state_dict") and "objective" in state:
        objective.load_state_dict(state["objective"])
    start, rows = int(state["step"]), list(state.get("history", []))
    log.info("resuming from %s at step %d", files.checkpoint, start)
    return start, rows


def write_history(path: Path, rows: list[dict]) -> None:
    """Rewrite ``path`` atomically with ``rows`` (none: remove it)."""
    path.unlink(missing_ok=True)
    if rows:
        tmp = path.with_name(f".{path.name}.tmp")
        for row in rows:
            append_history(tmp, row)
        os.replace(tmp, path)


def append_history(path: Path, row: dict) -> None:
    """Append ``row`` to the CSV ``path`` (with a header row if the file is new)."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
