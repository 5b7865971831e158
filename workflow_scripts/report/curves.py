"""Training curves from the stages' ``history.csv`` (one row per logged step).

history.csv (written by models/training/engine.py): ``step`` first, then ``loss`` (the total
objective), and any further columns; ``lr`` (learning rate) and ``seconds`` (wall time since
the start) are bookkeeping; ``masked_pixels``, ``iou_threshold`` (SGDepth's masking),
``translation`` and ``translation_forward`` (the pose network's) are diagnostics, not drawn as
losses (they are in history.csv and TensorBoard); every other column is a loss term of the stage's
objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.report.figure import new_figure, plt
from workflow_scripts.util import InputDataError

__all__ = ["BOOKKEEPING", "DIAGNOSTICS", "read_history", "moving_average", "curves_figure"]

BOOKKEEPING = ("step", "lr", "seconds", "grad_norm")
DIAGNOSTICS = ("masked_pixels", "iou_threshold", "translation", "translation_forward")


def read_history(path: str | Path) -> pd.DataFrame:
    """A stage's history.csv; checks that ``step`` and ``loss`` are there and numeric."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputDataError(path, f"cannot read the training history ({err})", "re-run the stage") from err
    missing = {"step", "loss"} - set(table.columns)
    if missing:
        raise InputDataError(path, f"columns {sorted(missing)} missing (has {list(table.columns)})",
                             "re-run the stage with the current training code")
    bad = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise InputDataError(path, f"non-numeric columns {bad}", "re-run the stage")
    return table


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start): (N,) -> (N,).

    NaN-free input gives NaN-free output; window <= 1 returns a copy.
    """
    values = np.asarray(values, np.float64)
    if window <= 1 or len(values) == 0:
        return values.copy()
    c = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(1, len(values) + 1)
    lo = np.maximum(0, i - window)
    return (c[i] - c[lo]) / (i - lo)


def _validation_curve(ax: plt.Axes, table: pd.DataFrame) -> None:
    """The validation metric of a validated stage (``val_abs_rel``, else its first ``val_``
    column) on a right-hand axis, at the validated steps, the best one marked."""
    columns = [c for c in table.columns if c.startswith("val_")]
    if not columns:
        return
    name = "val_abs_rel" if "val_abs_rel" in columns else columns[0]
    rows = table[["step", name]].dropna()
    if rows.empty:
        return
    right = ax.twinx()
    right.plot(rows["step"], rows[name], "o-", color="tab:red", lw=1, ms=3)
    best = rows.loc[rows[name].idxmin() if name != "val_a1" else rows[name].idxmax()]
    right.plot([best["step"]], [best[name]], "*", color="tab:red", ms=10)
    right.set_ylabel(f"{name} (validation; * = model.pt)", color="tab:red", fontsize=8)
    right.tick_params(axis="y", colors="tab:red", labelsize=7)


def curves_figure(histories: Sequence[pd.DataFrame], stages: Sequence[str], title: str,
                  smooth: int = 1, panel_in: tuple[float, float] = (4.2, 3.2)) -> plt.Figure:
    """One panel per stage: the total loss (bold) and each loss term against the step, and the
    validation metric of a validated stage on a right-hand axis.

    Args:
        histories: one table per stage (see ``read_history``).
        stages: their names (panel titles).
        title: figure title.
        smooth: trailing moving-average window in logged steps (1 = raw); the raw total loss
            stays visible, faint, behind the smoothed curves.
        panel_in: panel size in inches.
    """
    if len(histories) != len(stages) or not stages:
        raise ValueError(f"curves_figure: {len(histories)} histories for stages {list(stages)}")
    fig, axes = new_figure(panel_in[0] * len(stages), panel_in[1], ncols=len(stages))
    for ax, table, stage in zip(axes[0], histories, stages, strict=True):
        step = table["step"].to_numpy()
        terms = [c for c in table.columns
                 if c not in BOOKKEEPING + DIAGNOSTICS and c != "loss" and not c.startswith("val_")]
        ax.plot(step, table["loss"], color="black", alpha=0.25 if smooth > 1 else 1.0, lw=1)
        ax.plot(step, moving_average(table["loss"].to_numpy(), smooth), color="black", lw=2, label="loss")
        for term in terms:
            ax.plot(step, moving_average(table[term].to_numpy(), smooth), lw=1, label=term)
        values = table[["loss", *terms]].to_numpy(np.float64)
        if np.isfinite(values).all() and (values > 0).all():
            ax.set_yscale("log")
        _validation_curve(ax, table)
        ax.set_title(f"{stage} ({len(table)} steps logged)", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    axes[0, 0].set_ylabel("loss" + (f" (mean of {smooth} steps)" if smooth > 1 else ""))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
