"""Training throughput of the driving stages at the paper size (192x640, ResNet-18).

Times the real training loop (models.training.engine.train: data loading, objective, backward,
Adam, history) on synthetic batches of the right shapes, for the teacher (stereo + depth hints)
and the fine-tune (two temporal neighbours + pose network, minimum reprojection, SC-Depth
consistency). The baseline measured in the same run is the bare depth network forward+backward
on the same batch: the ratio says what the objective and loop add on top of the network.
On a GPU it also runs bf16 autocast against fp32 and reports the peak memory.

    python bench/bench_training.py                 # CPU, batch 2, 6 steps per case
    python bench/bench_training.py --batch 12 --steps 20 --device cuda
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.networks.spec import NetworkSpec, build_pose_net  # noqa: E402
from models.training import engine  # noqa: E402
from models.training import kitti_objectives as ko  # noqa: E402


class SyntheticKitti(Dataset):
    """Items shaped like workflow_scripts.kitti.dataset.KittiRawDataset's (random content)."""

    def __init__(self, n: int, hw: tuple[int, int], frames: int, hints: bool) -> None:
        self.n, self.hw, self.frames, self.hints = n, hw, frames, hints

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        _, index = key
        g = torch.Generator().manual_seed(int(index))
        h, w = self.hw
        color = torch.rand(self.frames, 3, h, w, generator=g)
        K = torch.tensor([[0.58 * w, 0, 0.5 * w], [0, 1.92 * h, 0.5 * h], [0, 0, 1.0]])
        out = {
            "color": color,
            "color_aug": color,
            "K": K,
            "inv_K": torch.linalg.inv(K),
            "stereo_T": torch.eye(4),
            "index": torch.tensor(index),
            "side": torch.tensor(2),
        }
        out["stereo_T"][0, 3] = -0.1
        if self.hints:
            out["hint"] = 1 + 20 * torch.rand(1, h, w, generator=g)
            out["hint_mask"] = (torch.rand(1, h, w, generator=g) > 0.3).float()
        return out


def time_loop(
    stage: str, hw: tuple[int, int], batch: int, steps: int, device: torch.device, bf16: bool
) -> tuple[float, float]:
    """Steps/s of engine.train for ``stage`` (first step excluded) and peak GPU memory (GiB)."""
    photo = ko.PhotoOptions(frame_ids=(0,) if stage == "teacher" else (0, -1, 1), stereo=stage == "teacher")
    nets = nn.ModuleDict({"depth": NetworkSpec().build()})
    if stage == "teacher":
        objective = ko.TeacherObjective(ko.TeacherOptions(photo=photo, hints=True))
        data = SyntheticKitti(batch * (steps + 1), hw, frames=2, hints=True)
    else:
        nets["pose"] = build_pose_net(18, "axis_angle")
        objective = ko.FinetuneObjective(ko.FinetuneOptions(photo=photo))
        data = SyntheticKitti(batch * (steps + 1), hw, frames=3, hints=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sched = engine.Schedule(steps=steps + 1, batch_size=batch, checkpoint_every=10_000, log_every=1)
    with tempfile.TemporaryDirectory() as tmp:
        files = engine.train(
            nets, objective, data, sched, tmp, seed=0, config={}, device=device, progress=False, bf16=bf16
        )
        with files.history.open() as fh:  # history rows carry the loop's own clock
            marks = [float(row["seconds"]) for row in csv.DictReader(fh)]
    rate = steps / (marks[-1] - marks[0])
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return rate, peak


def time_network(hw: tuple[int, int], batch: int, steps: int, device: torch.device) -> float:
    """Steps/s of the bare depth network forward + backward (the baseline)."""
    net = NetworkSpec().build().to(device)
    x = torch.rand(batch, 3, *hw, device=device)
    net(x)[0].mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        sum(d.mean() for d in net(x)).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=[192, 640], metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, hw = torch.device(args.device), tuple(args.size)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({where}), size {hw}, batch {args.batch}, ResNet-18 monodepth2 decoder")
    base = time_network(hw, args.batch, args.steps, device)
    print(f"{'baseline: depth net fwd+bwd':38s} {base:7.3f} steps/s  {base * args.batch:7.2f} img/s")
    modes = [False, True] if device.type == "cuda" else [False]
    for stage in ("teacher", "finetune"):
        for bf16 in modes:
            rate, peak = time_loop(stage, hw, args.batch, args.steps, device, bf16)
            mem = f"  peak {peak:5.2f} GiB" if device.type == "cuda" else ""
            name = f"{stage} loop ({'bf16' if bf16 else 'fp32'})"
            print(
                f"{name:38s} {rate:7.3f} steps/s  {rate * args.batch:7.2f} img/s  "
                f"x{base / rate:4.2f} the baseline's time{mem}"
            )


if __name__ == "__main__":
    main()
