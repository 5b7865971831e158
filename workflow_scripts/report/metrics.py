"""Bar charts of an evaluation table: one panel per metric, stages on the x axis, one bar
colour per group (e.g. the scaling of results/kitti_eval.csv: median / stereo)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.report.figure import new_figure, plt
from workflow_scripts.util import InputDataError

__all__ = ["EIGEN_METRICS", "HIGHER_IS_BETTER", "metrics_figure", "read_table"]

# Eigen metrics of results/kitti_eval.csv (workflow_scripts/kitti/evaluate.py)
EIGEN_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
HIGHER_IS_BETTER = frozenset({"a1", "a2", "a3", "delta1", "runner_up_ratio"})


def read_table(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """A CSV table with the ``required`` columns, or a clear error."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputDataError(path, f"cannot read the table ({err})",
                             "re-run the rule that writes it") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputDataError(path, f"columns {missing} missing (has {list(table.columns)})",
                             "re-run the rule that writes it")
    if table.empty:
        raise InputDataError(path, "the table has no rows", "re-run the rule that writes it")
    return table


def _any_true(column: pd.Series) -> bool:
    """Whether a boolean column (missing values = false) holds a true value."""
    return bool(column.fillna(False).astype(bool).any())


def metrics_figure(table: pd.DataFrame, metrics: Sequence[str], x: str, group: str | None,
                   title: str, ncols: int = 4, panel_in: tuple[float, float] = (3.0, 2.6),
                   flag: str | None = None) -> plt.Figure:
    """Grouped bars: for every metric a panel, ``x`` values along the axis (in table order),
    one bar per value of ``group`` (or a single bar when ``group`` is None).

    Panels of metrics where higher is better are marked with an up arrow in the title, the
    others with a down arrow. Bars carry their value. ``flag``: a boolean column; a bar whose
    rows have it true is hatched with a red edge and labelled with the column's name (e.g. an
    ambiguous CT registration, whose residuals may belong to a wrong pose).
    """
    xs = list(dict.fromkeys(table[x]))
    groups = list(dict.fromkeys(table[group])) if group else [None]
    nrows = int(np.ceil(len(metrics) / ncols))
    fig, axes = new_figure(panel_in[0] * ncols, panel_in[1] * nrows, nrows=nrows, ncols=ncols)
    width = 0.8 / len(groups)
    colours = plt.get_cmap("tab10").colors
    for k, metric in enumerate(metrics):
        ax = axes.flat[k]
        for g, name in enumerate(groups):
            rows = table if name is None else table[table[group] == name]
            values = [rows.loc[rows[x] == v, metric].mean() if (rows[x] == v).any() else np.nan for v in xs]
            pos = np.arange(len(xs)) + (g - (len(groups) - 1) / 2) * width
            bars = ax.bar(pos, values, width, color=colours[g % len(colours)],
                          label=str(name) if name is not None else None)
            flagged = [flag is not None and _any_true(rows.loc[rows[x] == v, flag]) for v in xs]
            for bar, on in zip(bars, flagged, strict=True):
                if on:
                    bar.set_hatch("///")
                    bar.set_edgecolor("tab:red")
            ax.bar_label(bars, labels=[f"{v:.3g}" + (f"\n{flag}" if on else "") for v, on in
                                       zip(values, flagged, strict=True)], fontsize=6, padding=1)
        ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs], rotation=30, fontsize=8)
        arrow = "\u2191" if metric in HIGHER_IS_BETTER else "\u2193"
        ax.set_title(f"{metric} {arrow}", fontsize=10)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    if group:  # in the first unused panel, else beside the first one
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if len(metrics) < axes.size:
            axes.flat[len(metrics)].set_visible(True)
            axes.flat[len(metrics)].axis("off")
            axes.flat[len(metrics)].legend(handles, labels, title=group, loc="center")
        else:
            axes.flat[0].legend(title=group, fontsize=7, title_fontsize=7)
    if flag is not None and _any_true(table[flag]):
        title += f"\nhatched, red edge: {flag} (see the registration views and docs/registration.md)"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
