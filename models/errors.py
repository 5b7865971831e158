"""The one exception type for bad user input, shared by every layer (pure Python, no torch)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputDataError"]


class InputDataError(Exception):
    """Bad input data: names the file, what is wrong with it, and what to do.

    The message is ``"<path>: <problem>. <fix>"``. The error survives pickling (process pools,
    spawned workers), so a worker's bad file reaches the parent with its message intact.

    Example:
        >>> raise InputDataError("data/calib.txt", "has no key P_rect_02", "use the KITTI raw calib")
    """

    def __init__(self, path: str | Path, problem: str, fix: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}. {fix}")

    def __reduce__(self):
        return (type(self), (str(self.path), self.problem, self.fix))
