"""The one exception type for bad user input."""

from __future__ import annotations

from pathlib import Path


class InputDataError(Exception):
    """Bad input data: names the file, what is wrong with it, and what to do.

    Example:
        >>> raise InputDataError("data/calib.txt", "has no key P_rect_02", "use the KITTI raw calib")
    """

    def __init__(self, path: str | Path, problem: str, fix: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}. {fix}")
