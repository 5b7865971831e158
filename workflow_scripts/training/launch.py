"""Running a training stage on several processes: the rule's script re-launches the stage under
``torchrun`` (``python -m torch.distributed.run``), one process per GPU (or per CPU share).

The rule's process writes a :class:`LaunchRequest` (what :func:`workflow_scripts.training.main_from_snakemake`
read from the ``snakemake`` object) beside the stage's outputs and runs::

    python -m torch.distributed.run --standalone --nproc-per-node N \\
        -m workflow_scripts.training.launch --request results/<branch>/train/<stage>/.launch_request.json

Each of the N processes joins the process group (:func:`models.training.distributed.init_from_env`:
NCCL on ``cuda:<LOCAL_RANK>`` when CUDA is usable, else gloo), trains its share of every batch, and
rank 0 validates and writes (checkpoints, history, model.pt) and its summary
(``.launch_result.json``). The ranks' output (rank 0's log lines, warnings of the others) goes
through the rule's process into the rule's log file. A failed rank makes torchrun stop the others;
the rule then fails with the log's last lines, and a re-run resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from workflow_scripts.training.slurm_nodes import SlurmAllocation, node_torchrun_command, srun_command
from workflow_scripts.training.stage import StageInputs

__all__ = ["LaunchRequest", "in_distributed_launch", "launch", "main", "torchrun_command"]
log = logging.getLogger(__name__)

_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Diverged|Interrupt)\b.*")
REQUEST_NAME, RESULT_NAME = ".launch_request.json", ".launch_result.json"
ROOT = Path(__file__).resolve().parents[2]  # the ranks import workflow_scripts and models from here


@dataclass(frozen=True)
class LaunchRequest:
    """What each rank needs to run a stage (JSON-able; paths as strings).

    Attributes:
        branch, stage: e.g. "endo", "teacher".
        train: the rule's ``train`` param ({"common": ..., "section": ...}, plain config).
        inputs: :class:`StageInputs` as plain values (see :meth:`stage_inputs`).
        out_model: the stage's model.pt (its folder holds checkpoint, history, request, result).
        seed: the config's seed; threads: CPU threads of each process.
    """

    branch: str
    stage: str
    train: dict
    inputs: dict
    out_model: str
    seed: int
    threads: int

    @classmethod
    def make(cls, branch: str, stage: str, train: Mapping, inputs: StageInputs, out_model: Path, *, seed: int,
             threads: int) -> LaunchRequest:
        plain = {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if isinstance(v, tuple) else v)
                 for k, v in asdict(inputs).items()}
        train = json.loads(json.dumps(train))  # plain dicts and lists (the rule's params are not)
        return cls(branch, stage, train, plain, str(out_model), int(seed), int(threads))

    def stage_inputs(self) -> StageInputs:
        """The :class:`StageInputs` back from their plain values."""
        values = dict(self.inputs)
        for key, value in values.items():
            if isinstance(value, list):  # hints, sfm_data, frames
                values[key] = tuple(Path(p) for p in value)
            elif isinstance(value, str) and key not in ("image_ext", "labels_split"):
                values[key] = Path(value)
        return StageInputs(**values)

    @property
    def folder(self) -> Path:
        return Path(self.out_model).parent

    def write(self) -> Path:
        """Write the request (atomically) into the stage's folder; returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / REQUEST_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> LaunchRequest:
        return cls(**json.loads(Path(path).read_text()))


def in_distributed_launch(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a rank of a launch (torchrun sets ``LOCAL_RANK`` and ``WORLD_SIZE``)."""
    env = os.environ if env is None else env
    return "LOCAL_RANK" in env and "WORLD_SIZE" in env


def torchrun_command(request: Path, processes: int, *, entry: str = "workflow_scripts.training.launch"
                     ) -> list[str]:
    """The torchrun command line of ``processes`` ranks on this machine (``--standalone``: a
    rendezvous on a free local port, so jobs side by side never collide) running ``entry``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", entry, "--request", str(request)]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the rule's process dies (Linux), so that torchrun stops its
    ranks instead of training on as orphans when Snakemake kills the job."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _log_stream() -> TextIO:
    """Where the ranks' output goes: the stream of the root logger's file handler (the rule's log,
    set up by setup_logging), else stderr."""
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(handler, logging.FileHandler) and stream is not None and not stream.closed:
            return stream
    return sys.stderr


def launch(request: LaunchRequest, processes: int, *, timeout: float | None = None,
           entry: str = "workflow_scripts.training.launch", sink: TextIO | None = None,
           allocation: SlurmAllocation | None = None, cpus_per_node: int = 1) -> dict:
    """Run ``request`` on ``processes`` ranks under torchrun and wait for it.

    Args:
        processes: ranks of each node.
        allocation: the SLURM job's nodes (:func:`~workflow_scripts.training.slurm_nodes.slurm_allocation`)
            for a stage on several: srun starts a torchrun on each with ``cpus_per_node`` CPUs;
            None = this machine alone.
        timeout: seconds before torchrun and its ranks are stopped (None: no limit).
        entry: the module each rank runs (tests pass one that injects a fault).
        sink: where the ranks' output goes (default: the rule's log, :func:`_log_stream`).
    Returns:
        rank 0's summary of the stage (what the stage's ``run`` returned).
    Raises:
        RuntimeError: torchrun failed or timed out; names the stage, the last exception line of
            the ranks' output and where that output is.
    """
    path = request.write()
    result = request.folder / RESULT_NAME
    result.unlink(missing_ok=True)
    sink = sink or _log_stream()
    path_var = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": str(request.threads), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": path_var}
    if allocation is not None:
        nodes = len(allocation.nodes)
        cmd = srun_command(path, allocation, processes, cpus_per_node, entry=entry)
        log.info("%s/%s on %d nodes x %d processes (%s; rendezvous %s:%d): %s", request.branch, request.stage,
                 nodes, processes, ",".join(allocation.nodes), allocation.master_addr, allocation.port,
                 " ".join(cmd))
        processes *= nodes
    else:
        cmd = torchrun_command(path, processes, entry=entry)
        log.info("%s/%s on %d processes: %s", request.branch, request.stage, processes, " ".join(cmd))
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except (OSError, ValueError):  # a handler left on a closed stream (an earlier in-process run)
            pass
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=_die_with_parent)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.terminate()  # torchrun stops its ranks

    timer = threading.Timer(timeout, stop) if timeout else None
    errors: collections.deque[str] = collections.deque(maxlen=1)  # the last exception line of a rank
    try:
        if timer:
            timer.start()
        for line in proc.stdout:
            sink.write(line)
            sink.flush()
            if _EXCEPTION_LINE.match(line) and not line.startswith("torch.distributed.elastic"):
                errors.append(line.strip())
        rc = proc.wait()
    finally:
        if timer:
            timer.cancel()
        if proc.poll() is None:  # interrupted here: stop torchrun, which stops the ranks
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if rc != 0 or not result.is_file():
        why = f"stopped after the timeout of {timeout:g} s" if timed_out.is_set() else f"exit status {rc}"
        where = getattr(sink, "name", "the output above")
        last = f"; last error: {errors[0]}" if errors else "; a rank was killed (no Python error)"
        raise RuntimeError(
            f"{request.branch}/{request.stage} on {processes} processes failed (torchrun {why}{last}); the "
            f"ranks' output is in {where}; a re-run resumes from the last checkpoint in {request.folder}")
    info = json.loads(result.read_text())
    result.unlink()
    path.unlink(missing_ok=True)  # kept after a failure: what the ranks ran
    return info


def run_rank(request: LaunchRequest) -> dict:
    """One rank's part: join the group, run the stage, rank 0 writes the summary."""
    import torch.distributed as dist

    from models.training.distributed import init_from_env
    from workflow_scripts.training import run_stage

    ranks = init_from_env()
    try:
        info = run_stage(request.branch, request.stage, request.train, request.stage_inputs(),
                         Path(request.out_model), seed=request.seed, threads=request.threads, gpus=0)
        if ranks is None or ranks.main:
            tmp = request.folder / (RESULT_NAME + ".tmp")
            tmp.write_text(json.dumps(info, default=str))
            os.replace(tmp, request.folder / RESULT_NAME)
        return info
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> None:
    """Entry of each rank (``python -m workflow_scripts.training.launch --request FILE``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--request", required=True, help="the LaunchRequest JSON the rule's process wrote")
    ap.add_argument("--node-of", help="N,G,addr,port: start this SLURM node's torchrun (slurm_nodes.py)")
    ap.add_argument("--entry", default="workflow_scripts.training.launch", help="the module of each rank")
    args = ap.parse_args(argv)
    if args.node_of:  # one task per node under srun: become this node's torchrun
        node_rank = int(os.environ["SLURM_NODEID"])
        cmd = node_torchrun_command(Path(args.request), args.node_of, node_rank, entry=args.entry)
        print(f"node {os.environ.get('SLURMD_NODENAME', '?')} (node rank {node_rank}) starts torchrun",
              file=sys.stderr, flush=True)
        os.execv(cmd[0], cmd)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(  # rank 0 tells the story; the others only their warnings and errors
        level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stderr,
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s")
    run_rank(LaunchRequest.read(args.request))


if __name__ == "__main__":
    main()
