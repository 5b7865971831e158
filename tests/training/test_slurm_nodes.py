"""A training stage on several SLURM nodes (workflow_scripts/training/slurm_nodes.py): the command
lines, the refusal outside SLURM, and the resources the rules ask for. The real two-node run is in
tests/test_slurm.py (a local SLURM with two slurmd daemons)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.dry_runs import snakemake_in
from workflow_scripts.training.slurm_nodes import (
    SlurmAllocation,
    node_torchrun_command,
    slurm_allocation,
    srun_command,
)

TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def test_srun_starts_one_torchrun_per_node_with_a_static_rendezvous_on_the_first():
    allocation = SlurmAllocation("20042", ("gpu-a01", "gpu-a02", "gpu-a03"), "10.0.0.7")
    assert allocation.port == 20042  # 20000 + job id % 20000
    cmd = srun_command(Path("req.json"), allocation, processes=4, cpus_per_node=40)
    assert cmd[:9] == ["srun", "--jobid=20042", "--overlap", "--nodes=3", "--ntasks=3", "--ntasks-per-node=1",
                       "--cpus-per-task=40", "--gres=gpu:4", "--kill-on-bad-exit=1"]
    assert cmd[9:12] == [sys.executable, "-m", "workflow_scripts.training.launch"]
    node_of = cmd[cmd.index("--node-of") + 1]
    assert node_of == "3,4,10.0.0.7,20042"
    node = node_torchrun_command(Path("req.json"), node_of, node_rank=2)
    assert node == [sys.executable, "-m", "torch.distributed.run", "--nnodes=3", "--node-rank=2",
                    "--nproc-per-node=4", "--master-addr=10.0.0.7", "--master-port=20042",
                    "-m", "workflow_scripts.training.launch", "--request", "req.json"]


def test_several_nodes_outside_slurm_stop_with_what_to_do():
    with pytest.raises(RuntimeError, match=r"endoscopy.train.common.nodes is 2: .* inside a SLURM job of 2 "
                                           r"nodes .*set nodes: 1"):
        slurm_allocation(2, "endoscopy.train.common", env={})


def _resources(workdir: Path, common: dict) -> dict[str, str]:
    overlay = workdir / "overlay.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    overlay.write_text(yaml.safe_dump({"endoscopy": {"train": {"common": common}}}))
    run = snakemake_in(workdir, "results/endo/train/teacher/model.pt", TINY, overlay)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    block = run.stdout[run.stdout.index("rule train_teacher:"):]
    line = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
    return dict(item.split("=", 1) for item in line.split(", "))


def test_the_rules_book_gpus_per_node_only_for_several_nodes(tmp_path):
    """nodes 2 x processes 2: SLURM's --nodes/--ntasks/--gres per node and the plugin's mpi path,
    no `gpu` total; one node: `gpu` = processes and none of the multi-node resources."""
    several = _resources(tmp_path / "two", {"nodes": 2, "processes": 2, "threads": 1, "batch_size": 4})
    expected = {"nodes": "2", "tasks": "2", "tasks_per_gpu": "0", "mpi": "srun", "gres": "gpu:2",
                "cpus_per_task": "2"}
    assert {k: several[k] for k in expected} == expected
    assert "gpu" not in several
    one = _resources(tmp_path / "one", {"processes": 2, "threads": 1, "batch_size": 4})
    # (the dry run's --resources gpu=1 caps the job's gpu=2 at 1)
    assert one["gpu"] == "1" and not {"nodes", "tasks", "tasks_per_gpu", "mpi", "gres"} & set(one)
    # --mem is per node: the same 2 processes, each with half the share of the global batch
    assert int(several["mem_mb"]) < int(one["mem_mb"])
