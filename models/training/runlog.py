"""A training run's log: ``history.csv`` (and the rows kept in checkpoints), TensorBoard scalars
and the progress bar (used by :func:`models.training.engine.train`, which re-exports :class:`RunLog`)."""

from __future__ import annotations

import time
from pathlib import Path

from torch import Tensor

from models.training.checkpoint import RunFiles, append_history, write_history

__all__ = ["RunLog"]


class RunLog:
    """A run's history (``history.csv`` and the rows kept in checkpoints), its TensorBoard
    scalars (``tb/``, when tensorboard is installed) and its progress bar."""

    def __init__(self, files: RunFiles, rows: list[dict], start: int, steps: int, progress: bool) -> None:
        """``rows``: the history of steps before ``start`` (from the resumed checkpoint)."""
        # history.csv restarts from the checkpoint's rows: rows an interrupted run logged after
        # its last checkpoint are dropped (they are logged again), a deleted file is rewritten
        write_history(files.history, rows)
        self.path, self.rows = files.history, rows
        self.writer = _tensorboard(files.out_dir / "tb")
        self.bar = _progress(steps, start, progress)
        self.t0 = time.perf_counter()

    def add(self, step: int, loss: Tensor, lr: float, grad_norm: float, logs: dict[str, float]) -> None:
        """Log the row of ``step`` optimiser steps done: loss, rate, gradient norm (before
        clipping; nan for a non-finite loss), seconds since start, logs."""
        row = {"step": step, "loss": float(loss.detach()), "lr": lr, "grad_norm": grad_norm,
               "seconds": round(time.perf_counter() - self.t0, 3), **logs}
        self.rows.append(row)
        append_history(self.path, row)
        for key, value in row.items():
            if key != "step":
                self.writer.add_scalar(key, value, step)

    def tick(self) -> None:
        """One more step done (the progress bar)."""
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        self.writer.close()


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
