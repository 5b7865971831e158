"""Glue between a rule script and Snakemake: logging to the rule's ``log:`` file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send ``logging`` output to the rule's log file (and warnings to stderr).

    Uncaught exceptions are written to the log as well, so that ``--show-failed-logs``
    shows why a job failed.
    """
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w")
        handler.setFormatter(fmt)
        root.addHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if log_path else level)
    console.setFormatter(fmt)
    root.addHandler(console)

    def _excepthook(kind, value, tb):  # noqa: ANN001 - signature fixed by sys
        logging.getLogger("rule").error("job failed", exc_info=(kind, value, tb))

    sys.excepthook = _excepthook
    return logging.getLogger("rule")
