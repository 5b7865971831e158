"""Tasks for the process-pool tests (importable by spawned workers)."""

from __future__ import annotations

import os
import time

from workflow_scripts.util import InputDataError


def sleeping_task(x: int) -> int:
    time.sleep(0.01)
    return x * x


def failing_task(x: int) -> int:
    """Fails on 3 with the workflow's error; -1 kills its worker; the others take a while."""
    if x == -1:
        os._exit(9)
    if x == 3:
        raise InputDataError(f"frame{x}.png", "is truncated", "re-extract it")
    time.sleep(0.3)
    return x
