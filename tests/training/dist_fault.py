"""A rank entry for the data-parallel tests (tests/training/test_distributed.py): the real one
(workflow_scripts.training.launch), except that rank 1 kills itself with SIGKILL at the start of
optimiser step ``DIST_FAULT_STEP`` (0-based), as a crashed node or an OOM kill would.

usage (by torchrun): python -m tests.training.dist_fault --request FILE
"""

from __future__ import annotations

import os
import signal

from models.training import endo_objectives as eo
from workflow_scripts.training.launch import main as launch_main


def main() -> None:
    step = int(os.environ["DIST_FAULT_STEP"])
    real = eo.SfMObjective.__call__

    def call(self, batch, nets):
        if os.environ.get("RANK") == "1" and int(batch["step"][0]) == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, batch, nets)

    eo.SfMObjective.__call__ = call
    launch_main()


if __name__ == "__main__":
    main()
