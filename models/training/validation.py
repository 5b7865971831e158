"""Validation during training and best-model selection (used by :func:`models.training.engine.train`).

A stage passes a :class:`Validation`: a function that scores the networks on held-out data and
returns named metrics (e.g. the Eigen depth metrics of the KITTI val frames), how often to call
it, and the metric that selects the best step. :class:`BestKeeper` holds the best step seen so far:
its weights in ``best.pt`` beside the checkpoint (written atomically when a validation improves
on it) and its step and value in the checkpoint, so that a resumed run keeps selecting exactly as
an uninterrupted one. After training, :func:`restore_best` loads the best weights into the
networks, for the stage to write them as its ``model.pt`` (the last weights go to ``last.pt``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from models.training.checkpoint import RunFiles, load_checkpoint, save_atomic

__all__ = ["BestKeeper", "Validation", "restore_best"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validation:
    """How a stage validates.

    Attributes:
        fn: ``fn(nets) -> {name: value}`` on held-out data; called in eval mode without
            gradients, the networks on the training device. Every call returns the same names.
        names: the metric names ``fn`` returns (history.csv gets a ``val_<name>`` column each,
            NaN on the rows of steps without validation).
        every: optimiser steps between validations (the last step is always validated).
        metric: the name whose best value selects ``model.pt``.
        mode: "min" (errors such as abs_rel) or "max" (accuracies such as a1).
        first: no validation before this many steps are done (e.g. while a fine-tune's depth
            network is frozen for a pose warm-up, its weights are still the previous stage's).
        baseline: the same metrics of a trivial prediction (a constant depth) on the same data,
            which a stage that learnt something beats; None = none.
    """

    fn: Callable[[nn.ModuleDict], dict[str, float]]
    names: tuple[str, ...]
    every: int
    metric: str
    mode: Literal["min", "max"] = "min"
    first: int = 0
    baseline: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.metric not in self.names:
            raise ValueError(f"validation metric {self.metric!r} is not among {self.names}")
        if self.every < 1:
            raise ValueError(f"validation every {self.every} steps: must be >= 1")
        if self.mode not in ("min", "max"):
            raise ValueError(f"validation mode {self.mode!r}: min or max")

    def due(self, done: int, steps: int) -> bool:
        """Whether to validate after ``done`` of ``steps`` optimiser steps."""
        return done >= self.first and (done % self.every == 0 or done == steps)

    def run(self, nets: nn.ModuleDict) -> dict[str, float]:
        """The metrics of ``nets`` (the networks' training modes are restored afterwards)."""
        modes = {name: net.training for name, net in nets.items()}
        nets.eval()
        try:
            with torch.no_grad():
                values = self.fn(nets)
        finally:
            for name, net in nets.items():
                net.train(modes[name])
        missing = set(self.names) - set(values)
        if missing:
            raise ValueError(f"validation returned {sorted(values)}, missing {sorted(missing)}")
        return {name: float(values[name]) for name in self.names}

    def columns(self, values: dict[str, float] | None) -> dict[str, float]:
        """The ``val_<name>`` columns of a history row (NaN without a validation at that step)."""
        return {f"val_{n}": (values[n] if values is not None else math.nan) for n in self.names}


class BestKeeper:
    """The best validated step of a run: ``best.pt`` (its networks' weights) and its step and
    value (kept in the checkpoint via :meth:`state_dict`)."""

    def __init__(self, validation: Validation, files: RunFiles) -> None:
        self.validation, self.path = validation, files.out_dir / "best.pt"
        self.step: int | None = None
        self.value = math.nan

    def better(self, value: float) -> bool:
        """Whether ``value`` improves on the best so far (a NaN never does; the first finite
        value always does)."""
        if not math.isfinite(value):
            return False
        if self.step is None:
            return True
        return value < self.value if self.validation.mode == "min" else value > self.value

    def update(self, step: int, values: dict[str, float], nets: nn.ModuleDict) -> bool:
        """Record the validation of ``step`` optimiser steps done; writes ``best.pt`` when it is
        the best so far. Returns whether it was."""
        value = values[self.validation.metric]
        if not self.better(value):
            return False
        save_atomic({"step": step, "value": value, "metric": self.validation.metric,
                     "nets": {k: {n: t.detach().cpu() for n, t in v.state_dict().items()}
                              for k, v in nets.items()}}, self.path)
        self.step, self.value = step, value
        log.info("step %d: best %s so far, %.6g", step, self.validation.metric, value)
        return True

    def state_dict(self) -> dict:
        return {"step": self.step, "value": self.value}

    def load_state_dict(self, state: dict | None) -> None:
        """Restore the best step of a resumed run (``state`` from its checkpoint); None or a
        missing ``best.pt`` starts afresh: an earlier run's ``best.pt`` is removed and the next
        finite validation becomes the best."""
        if state and state.get("step") is not None and self.path.is_file():
            self.step, self.value = int(state["step"]), float(state["value"])
        else:
            self.path.unlink(missing_ok=True)
            self.step, self.value = None, math.nan


def restore_best(out_dir: str | Path, nets: nn.ModuleDict) -> dict | None:
    """Load the best validated weights of the run in ``out_dir`` into ``nets`` and return
    ``{"step", "metric", "value"}``; None (``nets`` unchanged) when the run kept no best step."""
    path = Path(out_dir) / "best.pt"
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    for name, net in nets.items():
        net.load_state_dict(state["nets"][name])
    return {"step": int(state["step"]), "metric": str(state["metric"]), "value": float(state["value"])}
