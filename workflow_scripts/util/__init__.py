"""Small helpers shared by every rule script: atomic outputs, logging, input errors."""

from workflow_scripts.util.errors import InputDataError
from workflow_scripts.util.io import (
    atomic_dir,
    atomic_file,
    save_npy_atomic,
    write_table_atomic,
    write_text_atomic,
)

__all__ = ["InputDataError", "atomic_dir", "atomic_file", "save_npy_atomic", "write_table_atomic",
           "write_text_atomic"]
