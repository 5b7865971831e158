"""Training throughput of the driving stages at the paper size (192x640, ResNet-18).

Times the real training loop (models.training.engine.train: data loading, objective, backward,
Adam, history) on synthetic batches of the right shapes, for the teacher (stereo + depth hints)
and the fine-tune (two temporal neighbours + pose network, minimum reprojection, SC-Depth
consistency). The baseline measured in the same run is the bare depth network forward+backward
on the same batch: the ratio says what the objective and loop add on top of the network.
On a GPU it also runs bf16 autocast against fp32 and reports the peak memory.

    python bench/bench_training.py                 # CPU, batch 2, 6 steps per case
    python bench/bench_training.py --batch 12 --steps 20 --device cuda

``--recipes [NAME ...]`` times instead the stage each recipe of config/recipes/ trains (its
teacher: the whole method for the single-method recipes, the first of three stages for
liu2018), built as the workflow builds it (workflow_scripts.training), at the recipe's own
training size and batch size: optimiser steps (engine.train_step, bf16 autocast on CUDA as the
stage runs) on synthetic tensors of the right shapes, no data and no ImageNet file needed. It
prints steps/s, images/s, peak memory (torch.cuda.max_memory_allocated on CUDA, the process's
resident-set peak on the CPU) and the ratio of the step time to the baseline measured in the same
run: the monodepth2 ResNet-18 depth network's forward + backward + Adam step at 192 x 640,
batch 12 (or at the --size / --batch / --quick override, which applies to every recipe).

    python bench/bench_training.py --recipes --device cuda      # paper sizes: needs a GPU
    python bench/bench_training.py --recipes --quick            # every recipe at 64 x 192 (EPCDepth
                                                                # 160 x 512, endoscopy 64 x 128),
                                                                # batch 2: minutes on a CPU
    python bench/bench_training.py --recipes epcdepth --size 160 512 --batch 2

``--processes N [N ...]`` times instead the teacher loop data-parallel (models.training.distributed)
on each number of processes, launched with torchrun as the training rules launch a stage: NCCL,
one GPU per process, on a GPU machine; gloo on the CPU (the cores shared out: threads = cores /
N per process). The global batch stays ``--batch`` (split over the processes); it prints
steps/s, images/s and the scaling efficiency (steps/s over N x the 1-process steps/s).

    python bench/bench_training.py --processes 1 2 --batch 12 --steps 20     # GPU machine: 2 GPUs
    python bench/bench_training.py --processes 1 2 --size 64 192 --batch 4   # CPU: gloo
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.networks.spec import NetworkSpec, build_pose_net  # noqa: E402
from models.training import engine  # noqa: E402
from models.training import kitti_objectives as ko  # noqa: E402
from workflow_scripts.config.overlay import read_yaml  # noqa: E402
from workflow_scripts.config.resolve import ROOT, load_user_config, resolve  # noqa: E402
from workflow_scripts.training import endo, kitti  # noqa: E402
from workflow_scripts.training.endo_options import EndoCommon, EndoTeacher  # noqa: E402
from workflow_scripts.training.options import KittiCommon, KittiTeacher  # noqa: E402
from workflow_scripts.training.stage import StagePlan  # noqa: E402
from workflow_scripts.util.options import load_options  # noqa: E402

RECIPES = ROOT / "config" / "recipes"
QUICK_SIZE = {"kitti": (64, 192), "endo": (64, 128)}  # the endoscopy UNet needs multiples of 64


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
        if not files.history.exists():  # ranks other than 0 of a data-parallel run write nothing
            return float("nan"), float("nan")
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


def synthetic_endo(batch: int, hw: tuple[int, int]) -> dict:
    """A batch shaped like workflow_scripts.endo.dataset.EndoPairDataset's (random content, sparse
    samples on 2 % of the pixels, a small forward motion between the two frames)."""
    g = torch.Generator().manual_seed(0)
    h, w = hw
    color = torch.rand(batch, 2, 3, h, w, generator=g)
    sparse = (torch.rand(batch, 2, 1, h, w, generator=g) < 0.02).float()
    motion = torch.eye(4).repeat(batch, 1, 1)
    motion[:, 2, 3] = 0.05
    K = torch.tensor([[0.6 * w, 0, 0.5 * w], [0, 0.6 * w, 0.5 * h], [0, 0, 1.0]]).repeat(batch, 1, 1)
    depth = sparse * (1 + torch.rand(batch, 2, 1, h, w, generator=g))
    flow = 0.01 * torch.randn(batch, 2, 2, h, w, generator=g) * sparse
    return {
        "color": color, "color_aug": color, "mask": torch.ones(batch, 1, h, w), "K": K,
        "sparse_depth": depth, "sparse_depth_mask": sparse, "sparse_flow": flow, "sparse_flow_mask": sparse,
        "cam2_from_cam1": motion, "cam1_from_cam2": torch.linalg.inv(motion),
        "step": torch.zeros(batch, dtype=torch.long),
    }


def recipe_stage(path: Path, size: tuple[int, int] | None, batch: int | None, quick: bool = False):
    """The teacher of recipe ``path`` as the training rule builds it, with its settings for real
    data (no demo overlay) and random encoder weights: (plan, nets, objective, schedule, one
    synthetic batch, bf16, channels_last). ``quick``: QUICK_SIZE (160 x 512 for EPCDepth's RSU
    decoder, which needs 160) and batch 2, unless ``size`` / ``batch`` are given."""
    branch = "endo" if "endoscopy" in read_yaml(path) else "kitti"
    user = load_user_config(path)
    for key in ("kitti", "endoscopy"):
        user.setdefault(key, {})["root"] = "/bench/no-data"  # real-data settings: no demo overlay
    cfg = resolve(user)
    where, common_cls, teacher_cls = {"kitti": ("kitti", KittiCommon, KittiTeacher),
                                      "endo": ("endoscopy", EndoCommon, EndoTeacher)}[branch]
    train = cfg[where]["train"]
    common = load_options(common_cls, train["common"], f"{where}.train.common")
    section = load_options(teacher_cls, train["teacher"], f"{where}.train.teacher")
    section = dataclasses.replace(section, network=dataclasses.replace(section.network, weights=None))
    if quick and not size:
        size = (160, 512) if section.network.decoder.startswith("rsu") else QUICK_SIZE[branch]
    hw = size or tuple(common.size) or (256, 320)  # endoscopy []: sfm_data's crop, 256 x 320 on the reference
    common = dataclasses.replace(common, size=hw, batch_size=batch or (2 if quick else common.batch_size))
    if branch == "kitti":
        plan = kitti.stage_plan("teacher", common, section, None)
        nets, objective, stereo = kitti.build_stage(plan, None)
        data = SyntheticKitti(common.batch_size, hw, len(section.frame_ids) + stereo, section.hints)
        items = [data[(0, i)] for i in range(common.batch_size)]
        one = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        return plan, nets, objective, plan.schedule(1000), one, True, False
    plan = StagePlan("endo", "teacher", common, section, hw, section.network)
    per_unit = plan.per_unit(common.items_per_epoch or 1000)
    nets, objective = endo.build_stage(plan, None, per_unit)
    schedule = plan.schedule(common.items_per_epoch or 1000, **endo.schedule_extras(plan, per_unit))
    one = synthetic_endo(common.batch_size, hw)
    return plan, nets, objective, schedule, one, common.bf16, common.channels_last


def _peak_gib(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocations since the last reset, or on the CPU the
    resident set (torch and the interpreter included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def time_steps(nets: nn.ModuleDict, objective, schedule: engine.Schedule, batch: dict, steps: int,
               device: torch.device, bf16: bool, channels_last: bool = False) -> tuple[float, float]:
    """(steps/s: 1 / the median time of ``steps`` optimiser steps after one warm-up step, robust to
    other load on the machine; peak memory in GiB)."""
    nets.to(device)
    if device.type == "cuda" or channels_last:
        nets.to(memory_format=torch.channels_last)
    batch = {k: v.to(device) for k, v in batch.items()}
    opt = engine.build_optimizer(nets, schedule)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and bf16 else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        loss, _ = engine.train_step(nets, opt, objective, batch, step, schedule, autocast)
        float(loss.detach())  # waits for the device
        times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times[1:]), _peak_gib(device)


def _depth_only(batch: dict, nets: nn.ModuleDict):
    """The baseline's objective: the mean of the depth network's outputs."""
    return sum(d.mean() for d in nets["depth"](batch["color"][:, 0])), {}


def measure(recipe: str | None, size, batch, quick: bool, steps: int, device: str, threads: int) -> tuple:
    """One line of the table, in a process of its own (so that the peak is this case's):
    (stage, (H, W), batch, steps/s, peak GiB); ``recipe`` None = the baseline."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    if recipe is None:
        hw = tuple(size) if size else (QUICK_SIZE["kitti"] if quick else (192, 640))
        b = batch or (2 if quick else 12)
        nets = nn.ModuleDict({"depth": NetworkSpec().build()})
        sched = engine.Schedule(steps=steps + 1, batch_size=b)
        one = {"color": torch.rand(b, 1, 3, *hw)}
        rate, peak = time_steps(nets, _depth_only, sched, one, steps, dev, bf16=True)
        return "", hw, b, rate, peak
    plan, nets, objective, schedule, one, bf16, cl = recipe_stage(
        RECIPES / f"{recipe}.yaml", tuple(size) if size else None, batch, quick)
    rate, peak = time_steps(nets, objective, schedule, one, steps, dev, bf16, cl)
    return plan.stage, plan.size, plan.common.batch_size, rate, peak


def bench_recipes(names: list[str], args) -> None:
    """One line per recipe (see the module docstring), after the baseline's; each measured in a
    fresh process."""
    names = names or sorted(p.stem for p in RECIPES.glob("*.yaml"))
    ctx = multiprocessing.get_context("spawn")
    base = None
    for name in [None, *names]:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:  # exits cleanly (a Pool terminates)
            stage, (h, w), b, rate, peak = pool.submit(
                measure, name, args.size, args.batch, args.quick, args.steps, args.device, args.threads
            ).result()
        base = base or rate
        label = name or "baseline: monodepth2 R18 depth net"
        print(f"{label:36s} {stage:8s} {h:4d}x{w:<5d} {b:5d} {rate:8.3f} {rate * b:8.2f} {base / rate:9.2f} "
              f"{peak:8.2f}", flush=True)


def dp_worker(args) -> None:
    """One rank of ``--processes``: the teacher loop on this rank's device; rank 0 prints its rate."""
    from models.training.distributed import init_from_env

    ranks = init_from_env()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    rate, peak = time_loop("teacher", tuple(args.size), args.batch, args.steps, device, bf16=True)
    if ranks is None or ranks.main:
        print(f"RATE {rate} {peak}", flush=True)
    if ranks is not None:
        torch.distributed.destroy_process_group()


def bench_processes(counts: list[int], args) -> None:
    """One line per process count: the teacher loop under torchrun (see the module docstring)."""
    cuda = torch.cuda.is_available()
    cores = os.cpu_count() or 1
    where = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()} (NCCL)" if cuda else (
        f"CPU only, {cores} cores (gloo); no GPU on this machine: these are not GPU numbers")
    print(f"data-parallel teacher loop, size {tuple(args.size)}, global batch {args.batch}, {args.steps} "
          f"steps after 1: {where}")
    print(f"{'processes':>9s} {'steps/s':>8s} {'img/s':>8s} {'efficiency':>10s}")
    base = None
    for n in counts:
        threads = max(1, cores // n)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
               __file__, "--dp-worker", "--size", *map(str, args.size), "--batch", str(args.batch),
               "--steps", str(args.steps), "--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        rates = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("RATE ")]
        if out.returncode or not rates:
            print(f"{n:9d} failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
            continue
        rate = float(rates[0])
        base = rate if n == 1 else base
        efficiency = f"{rate / (n * base):10.2f}" if base else f"{'-':>10s}"
        print(f"{n:9d} {rate:8.3f} {rate * args.batch:8.2f} {efficiency}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                    help="training size (default 192 x 640; with --recipes, each recipe's own)")
    ap.add_argument("--batch", type=int, default=None,
                    help="batch size (default 2; with --recipes, each recipe's own)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 6; with --recipes, 3)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--recipes", nargs="*", default=None, metavar="NAME",
                    help="time the recipes of config/recipes/ (all, or the NAMEs) instead")
    ap.add_argument("--quick", action="store_true",
                    help="with --recipes: 64 x 192 (EPCDepth 160 x 512, endoscopy 64 x 128), batch 2")
    ap.add_argument("--processes", type=int, nargs="+", default=None, metavar="N",
                    help="time the teacher loop data-parallel on N processes (torchrun) instead")
    ap.add_argument("--dp-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dp_worker or args.processes:
        args.size, args.batch, args.steps = args.size or [192, 640], args.batch or 2, args.steps or 6
        if args.dp_worker:
            dp_worker(args)
        else:
            bench_processes(args.processes, args)
        return
    device = torch.device(args.device)
    if args.recipes is not None:
        args.steps = args.steps or 3
        cuda = device.type == "cuda"
        where = torch.cuda.get_device_name() if cuda else f"{torch.get_num_threads()} threads"
        peak = "peak GiB (CUDA allocated)" if cuda else "peak GiB (process RSS, with torch)"
        print(f"device {device} ({where}); median of {args.steps} optimiser steps after 1 warm-up; "
              f"synthetic batches; random encoder weights")
        print(f"{'recipe':36s} {'stage':8s} {'size':10s} {'batch':>5s} {'steps/s':>8s} {'img/s':>8s} "
              f"{'x base t':>9s} {peak}")
        bench_recipes(args.recipes, args)
        return
    args.size, args.batch, args.steps = args.size or [192, 640], args.batch or 2, args.steps or 6
    hw = tuple(args.size)
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
