"""Parameter counts and forward / forward+backward time of every network (run by hand, not in CI).

    PYTHONPATH=. .venv/bin/python bench/bench_networks.py                 # 192x640, batch 1, CPU (+ CUDA)
    PYTHONPATH=. .venv/bin/python bench/bench_networks.py --batch 4 --repeats 5 --devices cpu

Times are the best of ``--repeats`` rounds after one warm-up, in train mode (forward+backward of the
mean of all outputs) and in eval mode under no_grad (forward). Each round times every network once
(round robin), so that load from other processes on a shared machine hits all of them alike. The
last column is the ratio to the monodepth2 ResNet-18 depth network measured in the same run, the
baseline of the driving branch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.networks import DepthNet, PoseNet, UNet, fc_densenet57  # noqa: E402

NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "monodepth2 R18 (DepthNet)": lambda: DepthNet(18, "monodepth2"),
    "monodepth2 R50 (Depth Hints)": lambda: DepthNet(50, "monodepth2"),
    "SC-Depth R18 (bilinear, 1 scale)": lambda: DepthNet(18, "sc_depth"),
    "EPCDepth R18 RSU (5 maps)": lambda: DepthNet(18, "rsu"),
    "EPCDepth R18 RSU full-scale (10)": lambda: DepthNet(18, "rsu_full"),
    "EPCDepth R50 RSU full-scale (10)": lambda: DepthNet(50, "rsu_full"),
    "PoseNet R18 (pair, axis-angle)": lambda: PoseNet(18),
    "FC-DenseNet57 (endoscopy)": fc_densenet57,
    "UNet depth 7 wf 3 (teacher)": UNet,
}
BASELINE = "monodepth2 R18 (DepthNet)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _run(net: nn.Module, x: torch.Tensor, pair: bool, train: bool) -> None:
    out = net(x, x) if pair else net(x)
    if train:
        outs = out if isinstance(out, list) else [out]
        sum(o.float().mean() for o in outs).backward()


def time_once(net: nn.Module, x: torch.Tensor, pair: bool, train: bool) -> float:
    """Seconds of one forward (+ backward in train mode) pass."""
    net.train(train)
    net.zero_grad(set_to_none=True)
    _sync(x.device)
    t0 = time.perf_counter()
    with torch.set_grad_enabled(train):
        _run(net, x, pair, train)
    _sync(x.device)
    return time.perf_counter() - t0


def main(height: int, width: int, batch: int, repeats: int, devices: list[str], threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    print(f"input {batch}x3x{height}x{width}, best of {repeats} rounds, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    for dev in devices:
        if dev == "cuda" and not torch.cuda.is_available():
            print("\n(no CUDA device: GPU timings skipped)")
            continue
        device = torch.device(dev)
        torch.manual_seed(0)
        nets = {label: make().to(device) for label, make in NETWORKS.items()}
        x = torch.rand(batch, 3, height, width, device=device)
        best = {(label, train): float("inf") for label in nets for train in (True, False)}
        for k in range(repeats + 1):
            for label, net in nets.items():
                for train in (True, False):
                    t = time_once(net, x, isinstance(net, PoseNet), train)
                    if k:  # round 0 is a warm-up
                        best[label, train] = min(best[label, train], t)
        name = torch.cuda.get_device_name(device) if dev == "cuda" else "CPU"
        print(f"\n### {name}\n")
        print("| network | parameters | fwd+bwd (s) | fwd no_grad (s) | fwd+bwd / baseline |")
        print("|---|---:|---:|---:|---:|")
        base = best[BASELINE, True]
        for label, net in nets.items():
            n = sum(p.numel() for p in net.parameters())
            tb, tf = best[label, True], best[label, False]
            print(f"| {label} | {n:,} | {tb:.3f} | {tf:.3f} | {tb / base:.2f} |")
        del nets


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    a = parser.parse_args()
    main(a.height, a.width, a.batch, a.repeats, a.devices, a.threads)
