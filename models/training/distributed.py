"""Data-parallel training over several processes (``torch.distributed``) for
:func:`models.training.engine.train`.

A stage runs on ``W`` processes (ranks) when a launcher (``torchrun``; the workflow's is
``workflow_scripts/training/launch.py``) starts ``W`` copies of it and each calls
:func:`init_from_env`. The engine then, with the :class:`Ranks` of the process group:

* gives each rank a contiguous ``1/W`` share of every global batch (:class:`RankSampler`: the
  global batch of step ``s`` is the same ``StepSampler.batch(s)`` as with one process, so the
  configured batch size stays the global one and must be divisible by ``W``);
* averages the gradients over the ranks before the norm, clipping and update
  (:meth:`Ranks.average_gradients`), so every rank applies the same update to the same weights;
  with per-item-mean losses and no batch statistics this is the one-process gradient of the
  global batch, up to float rounding;
* averages the loss and the logged values (:meth:`Ranks.mean`, :meth:`Ranks.mean_logs`), so the
  non-finite decision, the history and the divergence check are global and the same on every
  rank (a rank that decided alone would leave the others waiting in a collective for ever);
* validates and writes checkpoints, history, TensorBoard and ``best.pt`` on rank 0 only
  (:attr:`Ranks.main`); every rank resumes from the same checkpoint.

Batch normalisation: on CUDA the networks' ``BatchNorm`` layers become ``SyncBatchNorm``
(statistics of the global batch, :func:`sync_batchnorm`); in this torch ``SyncBatchNorm`` runs on
GPUs only, so on the CPU (gloo) each rank normalises with the statistics of its own share, as
plain DistributedDataParallel does: a ResNet stage on ``W`` CPU processes is then not the same
computation as on one (the endoscopy UNet has no batch normalisation and is).

Without an initialised process group of more than one process, :meth:`Ranks.current` is None and
the engine runs its one-process code path unchanged.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

__all__ = ["COLLECTIVE_TIMEOUT", "NoLog", "RankSampler", "Ranks", "init_from_env", "is_main_process",
           "sync_batchnorm"]

log = logging.getLogger(__name__)

# Longest wait of a collective (and of the start-up rendezvous): the other ranks wait in the next
# step's all-reduce while rank 0 validates and writes a checkpoint; an hour covers a validation
# of thousands of frames. A rank that died is noticed by the launcher (torchrun) long before.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)


class Ranks:
    """This process's place in a process group of ``world > 1`` ranks, and the collectives the
    engine needs. ``device``: where collective tensors live (the rank's GPU for NCCL, the CPU
    for gloo)."""

    def __init__(self, rank: int, world: int, device: torch.device) -> None:
        self.rank, self.world, self.device = rank, world, device

    @classmethod
    def current(cls) -> Ranks | None:
        """The ranks of the initialised default process group; None without one or with a
        single process (the engine's one-process path)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        nccl = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that validates and writes."""
        return self.rank == 0

    def share(self, batch_size: int) -> int:
        """Items per rank of a global batch of ``batch_size``; raises ValueError when it does not
        split evenly (the gradient average would weigh the ranks' items unequally)."""
        if batch_size % self.world:
            raise ValueError(
                f"the global batch size {batch_size} does not split over {self.world} processes: set the "
                f"stage's batch size to a multiple of {self.world}, or run it on a number of processes "
                "that divides it")
        return batch_size // self.world

    def mean(self, value: Tensor) -> Tensor:
        """The mean over the ranks of the scalar ``value`` (detached, float32, on ``value``'s
        device); non-finite on every rank when it is on any."""
        t = value.detach().reshape(()).to(self.device, torch.float32).clone()
        dist.all_reduce(t)
        return (t / self.world).to(value.device)

    def mean_logs(self, logs: dict[str, float]) -> dict[str, float]:
        """Every logged value averaged over the ranks (the ranks log the same names; a share's
        mean of a per-item mean is then the global batch's)."""
        if not logs:
            return logs
        names = sorted(logs)
        t = torch.tensor([float(logs[n]) for n in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        means = dict(zip(names, (t / self.world).tolist(), strict=True))
        return {n: means[n] for n in logs}

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """Replace each gradient of ``params`` (the trained, unfrozen parameters, in the same
        order on every rank) by its mean over the ranks.

        A parameter without a gradient on some ranks (a branch a share did not reach) gets a zero
        gradient there when any rank has one, so that all ranks reduce the same tensors; one with
        a gradient on no rank keeps none (the optimiser skips it, as with one process).
        """
        if not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8, device=self.device)
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        used = [p for p, h in zip(params, has.tolist(), strict=True) if h]
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        buckets: dict[tuple[torch.dtype, torch.device], list[nn.Parameter]] = {}
        for p in used:
            buckets.setdefault((p.grad.dtype, p.grad.device), []).append(p)
        for bucket in buckets.values():  # one all-reduce per dtype and device
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])
            dist.all_reduce(flat)
            flat /= self.world
            offset = 0
            for p in bucket:
                n = p.grad.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
                offset += n

    def broadcast(self, nets: nn.ModuleDict) -> None:
        """Rank 0's parameters and buffers on every rank (as DistributedDataParallel does at the
        start): the ranks start from the same weights even if their initialisations differed."""
        for tensor in [*nets.parameters(), *nets.buffers()]:
            data = tensor.data
            moved = data.to(self.device)
            dist.broadcast(moved, src=0)
            if moved is not data:
                data.copy_(moved)

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()


class RankSampler(Sampler):
    """This rank's contiguous share of each global batch of a ``StepSampler``: rank ``r`` of
    ``W`` gets keys ``[r b, (r + 1) b)`` of the ``W b`` keys of every step (``b`` =
    :meth:`Ranks.share`)."""

    def __init__(self, steps: Sampler, batch_size: int, ranks: Ranks) -> None:
        self.steps, self.ranks = steps, ranks
        self.per_rank = ranks.share(batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        first = self.ranks.rank * self.per_rank
        for keys in self.steps:
            yield keys[first:first + self.per_rank]

    def __len__(self) -> int:
        return len(self.steps)


class NoLog:
    """The run log of ranks other than 0: no history, TensorBoard or progress bar."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def add(self, *args, **kwargs) -> None:
        pass

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


def is_main_process() -> bool:
    """Whether this process writes a stage's files: rank 0 of a process group, or a process
    outside any."""
    ranks = Ranks.current()
    return ranks is None or ranks.main


def sync_batchnorm(nets: nn.ModuleDict, device: torch.device) -> None:
    """On CUDA, replace the ``BatchNorm`` layers inside each network of ``nets`` by
    ``SyncBatchNorm`` (the same parameters and buffers, statistics over all ranks' shares); on
    the CPU nothing changes (``SyncBatchNorm`` runs on GPUs only). A network that is itself a
    batch-norm layer is replaced in ``nets``."""
    if device.type != "cuda":
        return
    for name, net in list(nets.items()):
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        if converted is not net:
            nets[name] = converted


def init_from_env(timeout: datetime.timedelta = COLLECTIVE_TIMEOUT) -> Ranks | None:
    """Join the process group a launcher (torchrun) described in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL with this rank's GPU
    ``cuda:<LOCAL_RANK>`` made the current device when CUDA is usable, else gloo on the CPU.

    Returns the :class:`Ranks` (None for a world of one process, which needs no group).
    Raises RuntimeError when the launcher started more processes on this machine than it has
    visible GPUs.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if torch.cuda.is_available():
        count, visible = torch.cuda.device_count(), os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        if local_world > count:
            raise RuntimeError(
                f"{local_world} training processes on this machine but only {count} visible GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={visible}): give the job as many GPUs as processes (its gpu "
                "resource), or lower the stage's processes")
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", timeout=timeout, device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo", timeout=timeout)
    ranks = Ranks.current()
    log.info("rank %d of %d (%s)", dist.get_rank(), world, dist.get_backend())
    return ranks
