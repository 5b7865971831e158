"""A training stage on several SLURM nodes: one ``torchrun`` per node, started by ``srun``.

A stage with ``<branch>.train.common.nodes`` N > 1 is one SLURM job of N nodes
(``rules/common_train.smk``: ``--nodes=N --ntasks=N --gres=gpu:<processes>``, and the SLURM
plugin's ``mpi`` path, so that the rule's script runs in the job's batch shell on its first node).
The rule's process then runs::

    srun --jobid=<job> --overlap --nodes=N --ntasks=N --ntasks-per-node=1 --gres=gpu:<G> ... \\
        python -m workflow_scripts.training.launch --request <request> --node-of N,G,<addr>,<port>

and each of those N tasks replaces itself with::

    python -m torch.distributed.run --nnodes=N --node-rank=$SLURM_NODEID --nproc-per-node=G \\
        --master-addr=<addr> --master-port=<port> -m workflow_scripts.training.launch --request <request>

a static rendezvous hosted by node rank 0, the allocation's first node (its ``NodeAddr``); the
port is derived from the job id so that two jobs sharing a node do not collide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SlurmAllocation", "node_torchrun_command", "slurm_allocation", "srun_command"]

PORT_BASE, PORT_SPAN = 20000, 20000  # rendezvous port: PORT_BASE + job id % PORT_SPAN


@dataclass(frozen=True)
class SlurmAllocation:
    """The nodes of the running SLURM job. ``master_addr``: the first node's address."""

    job_id: str
    nodes: tuple[str, ...]
    master_addr: str

    @property
    def port(self) -> int:
        return PORT_BASE + int(self.job_id) % PORT_SPAN


def _scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def slurm_allocation(nodes: int, where: str, env: Mapping[str, str] | None = None) -> SlurmAllocation:
    """The job's nodes (``squeue`` and ``scontrol show hostnames``: the SLURM plugin removes the
    job's other SLURM_* variables before the rule runs), checked against ``nodes``.

    Raises:
        RuntimeError: not inside a SLURM job, or the job holds another number of nodes; the
            message names the setting (``where``) and what to do.
    """
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job:
        raise RuntimeError(
            f"{where}.nodes is {nodes}: a stage on several nodes runs only inside a SLURM job of {nodes} "
            "nodes (snakemake --profile profiles/slurm, docs/cluster.md); on one machine set nodes: 1 "
            "and processes to its GPUs")
    listed = subprocess.run(["squeue", "-h", "-j", job, "-o", "%N"], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    hosts = tuple(_scontrol("show", "hostnames", listed).split())
    if len(hosts) != nodes:
        raise RuntimeError(
            f"{where}.nodes is {nodes} but SLURM job {job} holds {len(hosts)} node(s) ({listed}): the rule "
            "asks for --nodes from the same setting; check the profile's set-resources for `nodes`")
    fields = dict(item.split("=", 1) for item in _scontrol("show", "node", hosts[0], "-o").split()
                  if "=" in item)
    return SlurmAllocation(job, hosts, fields.get("NodeAddr") or hosts[0])


def srun_command(request: Path, allocation: SlurmAllocation, processes: int, cpus_per_node: int, *,
                 entry: str = "workflow_scripts.training.launch") -> list[str]:
    """The srun command line that starts one node launcher (:func:`node_torchrun_command`) on each
    node of ``allocation``, each with ``processes`` GPUs and ``cpus_per_node`` CPUs."""
    n = len(allocation.nodes)
    return ["srun", f"--jobid={allocation.job_id}", "--overlap", f"--nodes={n}", f"--ntasks={n}",
            "--ntasks-per-node=1", f"--cpus-per-task={cpus_per_node}", f"--gres=gpu:{processes}",
            "--kill-on-bad-exit=1", sys.executable, "-m", "workflow_scripts.training.launch",
            "--request", str(request), "--entry", entry,
            "--node-of", f"{n},{processes},{allocation.master_addr},{allocation.port}"]


def node_torchrun_command(request: Path, node_of: str, node_rank: int, *,
                          entry: str = "workflow_scripts.training.launch") -> list[str]:
    """The torchrun command line of one node: ``node_of`` is ``"N,G,addr,port"`` (from
    :func:`srun_command`), ``node_rank`` this node's ``SLURM_NODEID``."""
    nodes, processes, addr, port = node_of.split(",")
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={int(nodes)}",
            f"--node-rank={node_rank}", f"--nproc-per-node={int(processes)}", f"--master-addr={addr}",
            f"--master-port={int(port)}",
            "-m", entry, "--request", str(request)]
