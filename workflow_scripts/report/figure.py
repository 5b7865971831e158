"""Shared plumbing of the report figures: headless matplotlib, atomic PNG output, PLY input."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on compute nodes; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from workflow_scripts.util import atomic_file  # noqa: E402

__all__ = ["DPI", "new_figure", "plt", "save_png"]

DPI = 100  # pixels per inch of every report figure: sizes in inches x 100 = pixels


def new_figure(width_in: float, height_in: float, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """A figure of ``width_in`` x ``height_in`` inches with a grid of axes (``plt.subplots``
    keyword arguments), axes always returned as a 2-D array."""
    fig, axes = plt.subplots(figsize=(width_in, height_in), dpi=DPI, squeeze=False, **kwargs)
    return fig, axes


def save_png(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically and close it (figures are never reused)."""
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
