"""Glue between a rule script and Snakemake: logging to the rule's ``log:`` file, and the one
readable line a failed job ends with."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from workflow_scripts.util.errors import InputDataError

__all__ = ["setup_logging", "failure_line", "run_cli"]


def failure_line(error: BaseException) -> str:
    """The one line that says why a job failed: ``<file>: <problem>. <fix>`` for bad input,
    ``<ErrorType>: <message>`` for anything else."""
    if isinstance(error, InputDataError):
        return str(error)
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_cli(main: Callable[[], object]) -> None:
    """Run a rule script's command-line ``main`` (``python -m workflow_scripts.<script> ...``):
    bad input ends with the one line that says what to fix, without a traceback."""
    try:
        main()
    except InputDataError as err:
        raise SystemExit(f"error: {err}") from None


def setup_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send ``logging`` output to the rule's log file (and warnings to stderr).

    An uncaught exception writes its traceback to the log, which then ends with the one line of
    :func:`failure_line`; stderr (what Snakemake shows) gets only that line and where the
    traceback is.
    """
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = None
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="w")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if log_path else level)
    console.setFormatter(fmt)
    root.addHandler(console)

    def _excepthook(kind, value, tb):  # noqa: ANN001 - signature fixed by sys
        line = failure_line(value)
        if file_handler is not None:
            file_handler.stream.write("".join(traceback.format_exception(kind, value, tb)))
            file_handler.stream.write(f"{line}\n")
            file_handler.flush()
            sys.stderr.write(f"{line}\n(traceback: {log_path})\n")
        else:
            sys.stderr.write("".join(traceback.format_exception(kind, value, tb)) + f"{line}\n")
        sys.stderr.flush()

    sys.excepthook = _excepthook
    return logging.getLogger("rule")
