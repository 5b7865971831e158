"""GPU device ids for jobs: Snakemake counts the ``gpu`` resource but never says WHICH device
a job may use (snakemake/snakemake#281), so with ``--resources gpu=2`` two jobs would both run
on GPU 0. ``assign_gpu`` gives each job its own device(s) and sets ``CUDA_VISIBLE_DEVICES``.

Use it in a GPU rule script, around all CUDA work and before CUDA is initialised (torch reads
``CUDA_VISIBLE_DEVICES`` once, at its first CUDA call)::

    from workflow_scripts.util.gpu import assign_gpu

    with assign_gpu(smk.resources.get("gpu", 1)) as gpus:
        device = "cuda" if gpus.devices and torch.cuda.is_available() else "cpu"
        train(..., device=device)        # inside the job, "cuda" means cuda:0 = gpus.devices[0]

A job of ``n`` GPUs (a data-parallel training stage: ``gpu`` = its processes) gets ``n`` ids no
other job holds, all or none, and its torchrun ranks use ``cuda:<LOCAL_RANK>`` among them.

How the devices are chosen (first match wins):

1. **Inside a SLURM job** (``SLURM_JOB_ID`` set) SLURM's assignment is kept: the job uses the
   GPUs that SLURM gave it (``CUDA_VISIBLE_DEVICES`` as SLURM set it, else ``SLURM_STEP_GPUS``
   / ``SLURM_JOB_GPUS``) and ``CUDA_VISIBLE_DEVICES`` is left as it is. Only when SLURM gave
   more GPUs than the job asks for (Snakemake run locally inside an ``salloc`` allocation with
   several GPUs) are they shared out among the jobs with locks private to that SLURM job.
   When SLURM gave no GPU, ``devices`` is empty and nothing is changed: SLURM sets
   ``CUDA_VISIBLE_DEVICES=0`` in some jobs without any GPU, so the variable alone is never
   taken as proof of a GPU.
2. **No GPU on the machine** (``device_count`` is 0; by default ``nvidia-smi -L``): nothing is
   changed, ``devices`` is empty and the job runs on the CPU.
3. **Otherwise** the candidates are the ids in an existing ``CUDA_VISIBLE_DEVICES`` (a user's
   restriction, e.g. ``CUDA_VISIBLE_DEVICES=2,3 snakemake ...``: only those are used), else
   ``0 .. device_count-1``. The first free candidates are taken with an exclusive
   ``fcntl.flock`` on ``<lock_dir>/gpu<id>.lock``; when all are taken the job waits for one
   (``timeout`` seconds at most; ``None`` waits for ever). ``CUDA_VISIBLE_DEVICES`` is set to
   the chosen ids (and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` when the ids come from
   ``nvidia-smi``, so that they mean what it shows) and both are restored on exit. The
   operating system drops a lock when its process dies, so a crashed or killed job never
   keeps a GPU.

The default lock folder is shared by all workflows of the user on the machine
(``$DEPTH_WORKFLOW_GPU_LOCKS`` or ``<tmp>/depth-workflow-gpu-locks-<uid>``): a GPU is a machine
resource, so two workflow copies running side by side must not both pick GPU 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GpuAssignment", "assign_gpu", "count_nvidia_gpus", "default_lock_dir"]

log = logging.getLogger(__name__)

_SLURM_GPU_VARS = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


@dataclass(frozen=True)
class GpuAssignment:
    """What a job got.

    Attributes:
        devices: the device ids now in ``CUDA_VISIBLE_DEVICES`` (as strings, e.g. ``("1",)``),
            empty when the job has no GPU and should run on the CPU.
        source: ``"slurm"`` (kept SLURM's choice), ``"lock"`` (allocated here) or ``"none"``.
    """

    devices: tuple[str, ...]
    source: str


def count_nvidia_gpus(timeout: float = 20.0) -> int:
    """Number of NVIDIA GPUs on the machine from ``nvidia-smi -L`` (0 without the tool or a
    driver). Does not initialise CUDA in this process and ignores ``CUDA_VISIBLE_DEVICES``.

    When nvidia-smi exists but fails (non-zero exit, no answer within ``timeout`` seconds, or
    it cannot be started), the count is 0 and a warning names the command, how it failed and
    the first lines of its stderr: the job then runs on the CPU.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    cmd = [exe, "-L"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        _warn_no_gpu(cmd, f"no answer within {timeout:g} s", err.stderr)
        return 0
    except OSError as err:
        _warn_no_gpu(cmd, f"could not run ({type(err).__name__}: {err})", None)
        return 0
    if out.returncode != 0:
        _warn_no_gpu(cmd, f"exit status {out.returncode}", out.stderr)
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _warn_no_gpu(cmd: list[str], failure: str, stderr: str | bytes | None, lines: int = 3) -> None:
    """Log that ``cmd`` failed (``failure``), with the first ``lines`` non-blank lines of its stderr."""
    if isinstance(stderr, bytes):  # TimeoutExpired keeps bytes even with text=True
        stderr = stderr.decode(errors="replace")
    head = [line.strip() for line in (stderr or "").splitlines() if line.strip()][:lines]
    log.warning("`%s` failed (%s)%s; counting 0 GPUs: this job runs on the CPU",
                " ".join(cmd), failure, ": " + " | ".join(head) if head else ", nothing on stderr")


def default_lock_dir() -> Path:
    """``$DEPTH_WORKFLOW_GPU_LOCKS`` or ``<system tmp>/depth-workflow-gpu-locks-<uid>``."""
    env = os.environ.get("DEPTH_WORKFLOW_GPU_LOCKS")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"depth-workflow-gpu-locks-{os.getuid()}"


def _split_ids(value: str | None) -> list[str]:
    """Device ids in a CUDA_VISIBLE_DEVICES-like list ("0,2", "GPU-uuid", ""); "-1" = none."""
    if value is None:
        return []
    ids = [part.strip() for part in value.split(",") if part.strip()]
    return [] if ids and ids[0].startswith("-") else ids


def _slurm_devices(env: MutableMapping[str, str]) -> list[str]:
    """The GPUs SLURM gave this job, as CUDA sees them ([] when it gave none)."""
    if not any(_split_ids(env.get(var)) for var in _SLURM_GPU_VARS):
        return []
    visible = _split_ids(env.get("CUDA_VISIBLE_DEVICES"))
    if visible:
        return visible
    for var in _SLURM_GPU_VARS:
        if ids := _split_ids(env.get(var)):
            return ids
    return []


def _lock_name(device: str) -> str:
    return "gpu" + re.sub(r"[^A-Za-z0-9_.-]", "_", device) + ".lock"


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None when someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}\n".encode())
    return fd


def _acquire(candidates: Sequence[str], n: int, lock_dir: Path, timeout: float | None,
             poll: float) -> tuple[list[str], list[int]]:
    """Lock ``n`` of ``candidates`` (first free ones), waiting up to ``timeout`` s."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        chosen, fds = [], []
        for device in candidates:
            fd = _try_lock(lock_dir / _lock_name(device))
            if fd is not None:
                chosen.append(device)
                fds.append(fd)
                if len(chosen) == n:
                    return chosen, fds
        for fd in fds:  # not enough free: give back what we took, so nobody starves
            os.close(fd)
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"no {n} free GPU(s) among {list(candidates)} after {timeout} s "
                               f"(locks in {lock_dir})")
        if not waited:
            log.info("all of GPUs %s are in use; waiting for one to become free", list(candidates))
            waited = True
        time.sleep(poll)


@contextlib.contextmanager
def _set_env(env: MutableMapping[str, str], values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``env`` and restore the previous values (or absence) on exit."""
    before = {key: env.get(key) for key in values}
    env.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                env.pop(key, None)
            else:
                env[key] = old


@dataclass(frozen=True)
class _Plan:
    """Either a final answer (``decided``) or the ids to lock ``n`` of."""

    decided: GpuAssignment | None = None
    candidates: tuple[str, ...] = ()
    lock_subdir: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


def _plan(n: int, env: MutableMapping[str, str], device_count: int | Callable[[], int]) -> _Plan:
    """Rules 1-3 of the module docstring, without touching any lock or the environment."""
    if n <= 0:
        return _Plan(GpuAssignment((), "none"))
    if env.get("SLURM_JOB_ID"):
        given = _slurm_devices(env)
        if not given:
            log.warning("SLURM job %s has no GPU allocated (submitted without the `gpu` "
                        "resource?): running on the CPU", env["SLURM_JOB_ID"])
        elif len(given) < n:
            log.warning("the job asks for %d GPUs, SLURM gave it %s", n, given)
        if len(given) <= n:
            return _Plan(GpuAssignment(tuple(given), "slurm"))
        candidates, subdir, extra = given, f"slurm-job-{env['SLURM_JOB_ID']}", {}
    else:
        count = device_count() if callable(device_count) else device_count
        if count <= 0:
            return _Plan(GpuAssignment((), "none"))
        subdir = ""
        if "CUDA_VISIBLE_DEVICES" in env:  # the user's restriction, in the user's id order
            candidates, extra = _split_ids(env["CUDA_VISIBLE_DEVICES"]), {}
            if not candidates:  # all GPUs hidden on purpose
                return _Plan(GpuAssignment((), "none"))
        else:  # ids as nvidia-smi numbers them
            candidates = [str(i) for i in range(count)]
            extra = {"CUDA_DEVICE_ORDER": env.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID")}
    if n > len(candidates):
        raise ValueError(f"a job asks for {n} GPUs but only {candidates} can be used "
                         "(lower its `gpu` resource or widen CUDA_VISIBLE_DEVICES)")
    return _Plan(None, tuple(candidates), subdir, extra)


@contextlib.contextmanager
def assign_gpu(
    n: int = 1,
    *,
    device_count: int | Callable[[], int] = count_nvidia_gpus,
    lock_dir: str | Path | None = None,
    env: MutableMapping[str, str] | None = None,
    timeout: float | None = None,
    poll: float = 0.5,
) -> Iterator[GpuAssignment]:
    """Reserve ``n`` GPU(s) for the enclosed block and point ``CUDA_VISIBLE_DEVICES`` at them.

    Args:
        n: number of GPUs the job uses (its ``resources: gpu``); ``n <= 0`` assigns none.
        device_count: GPUs on the machine, or a function giving it (default ``nvidia-smi -L``);
            tests pass a number to simulate a machine.
        lock_dir: folder of the lock files (default: ``default_lock_dir()``).
        env: the environment to read and change (default ``os.environ``; tests and threads
            pass their own dict, since ``os.environ`` is shared by the whole process).
        timeout: longest wait in seconds for free GPUs (``None``: wait for ever); raises
            ``TimeoutError`` when it runs out.
        poll: seconds between attempts while waiting.

    Yields:
        GpuAssignment: the ids now visible to the job (empty: run on the CPU) and their source.

    Raises:
        ValueError: more GPUs requested than the candidates can ever provide.
        TimeoutError: ``timeout`` passed with fewer than ``n`` GPUs free.
    """
    env = os.environ if env is None else env
    plan = _plan(n, env, device_count)
    if plan.decided is not None:
        yield plan.decided
        return
    base = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    chosen, fds = _acquire(plan.candidates, n, base / plan.lock_subdir, timeout, poll)
    try:
        log.info("using GPU(s) %s", ",".join(chosen))
        with _set_env(env, {"CUDA_VISIBLE_DEVICES": ",".join(chosen), **plan.extra_env}):
            yield GpuAssignment(tuple(chosen), "lock")
    finally:
        for fd in fds:
            os.close(fd)
