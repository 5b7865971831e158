"""A tiny training run for the engine tests (run as a subprocess so it can be killed).

usage: python -m tests.training.toy_run OUT_DIR STEPS [SLEEP_PER_STEP]
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn
from torch.utils.data import Dataset

from models.training.engine import Schedule, train


class Points(Dataset):
    """y = 3 x - 1 with noise drawn from the item key (step, index)."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, key):
        step, i = key
        g = torch.Generator().manual_seed(step * 100 + i)
        x = torch.tensor([i / 9.0])
        return {"x": x, "y": 3 * x - 1 + 0.01 * torch.randn(1, generator=g)}


def objective(batch, nets):
    pred = nets["lin"](batch["x"]) + 0.001 * torch.randn(1)  # a draw inside the step
    loss = ((pred - batch["y"]) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def main(out: str, steps: int, sleep: float = 0.0) -> None:
    torch.manual_seed(0)
    nets = nn.ModuleDict({"lin": nn.Linear(1, 1)})
    if sleep:
        inner = objective

        def slow(batch, n):
            time.sleep(sleep)
            return inner(batch, n)
    sched = Schedule(steps=steps, batch_size=4, lr=0.1, checkpoint_every=5, log_every=1,
                     lr_milestones=(80,))
    train(nets, slow if sleep else objective, Points(), sched, out, seed=7, config={"toy": 1}, progress=False)
    print(nets["lin"].weight.item(), nets["lin"].bias.item(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
