"""Process pools that fail fast: the first failing task stops the whole map.

``multiprocessing.Pool`` waits for ever when a worker dies (killed, out of memory) or when a
worker's exception cannot be rebuilt in the parent. :func:`map_in_processes` uses
``concurrent.futures.ProcessPoolExecutor`` instead, which reports a dead worker
(``BrokenProcessPool``) and re-raises a task's exception in the parent; on the first error the
tasks not yet started are cancelled and the error propagates at once, with the worker's message
(``InputDataError`` pickles with its file, problem and fix).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["map_in_processes", "WorkerDied"]

T = TypeVar("T")
R = TypeVar("R")


class WorkerDied(RuntimeError):
    """A worker process ended without returning (killed, or out of memory)."""


def map_in_processes(
    fn: Callable[[T], R],
    tasks: Iterable[T],
    workers: int,
    *,
    context: str = "spawn",
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    ordered: bool = True,
) -> Iterator[R]:
    """``fn`` over ``tasks`` in ``workers`` processes; yields the results (in task order when
    ``ordered``, else as they finish).

    Args:
        context: multiprocessing start method ("spawn", "fork"); spawn avoids inheriting
            OpenCV's or OpenMP's thread pools, fork shares large read-only state cheaply.
        initializer, initargs: run once in every worker (e.g. to build matchers or a renderer).
    Raises:
        the first failing task's exception, or WorkerDied; the other tasks are cancelled and
        the workers stopped.
    """
    executor = ProcessPoolExecutor(
        max(1, workers), mp_context=mp.get_context(context), initializer=initializer, initargs=initargs
    )
    futures = [executor.submit(fn, t) for t in tasks]
    watch = _Watch(futures)
    ok = False
    try:
        for future in futures if ordered else watch.as_completed():
            watch.until_done(future)
            yield future.result()
        ok = True
    finally:
        if not ok:  # a failure (or the caller stopped early): no worker keeps running
            for future in futures:
                future.cancel()
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        executor.shutdown(wait=ok, cancel_futures=True)


class _Watch:
    """Watches every task: the first failure anywhere is raised, whichever task is awaited."""

    def __init__(self, futures: list[Future]) -> None:
        self.pending = set(futures)
        self.finished: list[Future] = []

    def _step(self) -> None:
        done, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
        for future in done:
            error = None if future.cancelled() else future.exception()
            if isinstance(error, BrokenProcessPool):
                raise WorkerDied(
                    f"a worker process died ({error}); the job stops. Look for a kill or an "
                    "out-of-memory message in the system log, or run with fewer workers"
                ) from error
            if error is not None:
                raise error
            self.finished.append(future)

    def until_done(self, future: Future) -> None:
        while not future.done() or future in self.pending:
            self._step()

    def as_completed(self) -> Iterator[Future]:
        while self.pending or self.finished:
            if not self.finished:
                self._step()
            while self.finished:
                yield self.finished.pop(0)
