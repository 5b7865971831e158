"""The one exception type for bad user input (defined in ``models.errors``, the lowest layer,
so that the PyTorch library raises the same type without importing the workflow)."""

from models.errors import InputDataError

__all__ = ["InputDataError"]
