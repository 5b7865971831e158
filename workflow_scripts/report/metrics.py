"""Bar charts of an evaluation table: one panel per metric, stages on the x axis, one bar
colour per group (e.g. the scaling of results/kitti_eval.csv: median / stereo). Labels, units
and better directions of the metrics: directions.py (shared with the HTML tables)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from workflow_scripts.report.directions import describe
from workflow_scripts.report.figure import new_figure, plt
from workflow_scripts.report.tables import format_value
from workflow_scripts.util import InputDataError

__all__ = ["EIGEN_METRICS", "metrics_figure", "read_table"]

# Eigen metrics of results/kitti_eval.csv (workflow_scripts/kitti/evaluate.py); their labels,
# units and better directions are in directions.py
EIGEN_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


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


def _bar_width_pt(ax: plt.Axes, width: float) -> float:
    """Width in points of a bar ``width`` data units wide in ``ax`` (after the layout)."""
    x0, x1 = ax.get_xlim()
    return ax.get_window_extent().width / abs(x1 - x0) * width * 72.0 / ax.figure.dpi


def _panel_title(metric: str) -> str:
    """Readable title of a metric panel, e.g. "RMSE (m) ↓" (the column name if unknown)."""
    info = describe(metric)
    return info.header() if info is not None else metric


def metrics_figure(table: pd.DataFrame, metrics: Sequence[str], x: str, group: str | None,
                   title: str, ncols: int = 3, panel_in: tuple[float, float] = (4.2, 3.0),
                   flag: str | None = None, label_pt: float = 8.0,
                   flag_metrics: Sequence[str] | None = None) -> plt.Figure:
    """Grouped bars: for every metric a panel, ``x`` values along the axis (in table order),
    one bar per value of ``group`` (or a single bar when ``group`` is None).

    Panel titles are the metric's label, unit and better direction (directions.py: up arrow =
    higher is better). Bars carry their value (3 significant digits, ``label_pt`` points,
    vertical) where every bar of the panel is wide enough for it; else the panel has none
    (the numbers are in the report's HTML table). ``flag``: a boolean column; a bar whose rows
    have it true is hatched with a red edge, explained in the legend and the title (e.g. an
    ambiguous CT registration, whose residuals may belong to a wrong pose), in the panels of
    ``flag_metrics`` only (None: every panel).
    """
    xs = list(dict.fromkeys(table[x]))
    groups = list(dict.fromkeys(table[group])) if group else [None]
    nrows = int(np.ceil(len(metrics) / ncols))
    fig, axes = new_figure(panel_in[0] * ncols, panel_in[1] * nrows, nrows=nrows, ncols=ncols,
                           layout="constrained")
    width = 0.8 / len(groups)
    colours = plt.get_cmap("tab10").colors
    labels: dict[int, list] = {}
    for k, metric in enumerate(metrics):
        ax = axes.flat[k]
        top = 0.0
        for g, name in enumerate(groups):
            rows = table if name is None else table[table[group] == name]
            values = [rows.loc[rows[x] == v, metric].mean() if (rows[x] == v).any() else np.nan for v in xs]
            pos = np.arange(len(xs)) + (g - (len(groups) - 1) / 2) * width
            bars = ax.bar(pos, values, width, color=colours[g % len(colours)],
                          label=str(name) if name is not None else None)
            applies = flag is not None and (flag_metrics is None or metric in flag_metrics)
            flagged = [applies and _any_true(rows.loc[rows[x] == v, flag]) for v in xs]
            for bar, on in zip(bars, flagged, strict=True):
                if on:
                    bar.set_hatch("///")
                    bar.set_edgecolor("tab:red")
            texts = ["" if not np.isfinite(v) else format_value(v) for v in values]
            labels.setdefault(k, []).extend(ax.bar_label(bars, labels=texts, fontsize=label_pt, padding=2,
                                                         rotation=90))
            top = max([top, *[v for v in values if np.isfinite(v)]])
        ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs], rotation=30 if len(xs) > 4 else 0, fontsize=9)
        ax.set_title(_panel_title(metric), fontsize=11)
        ax.set_ylim(0, top * 1.35 if top > 0 else 1.0)  # room for the vertical labels above the bars
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    # plain patches: a group's first bar may be hatched
    handles: list = [Patch(facecolor=colours[g % len(colours)]) for g in range(len(groups))] if group else []
    names = [str(name) for name in groups] if group else []
    if flag is not None and _any_true(table[flag]):
        handles.append(Patch(facecolor="white", edgecolor="tab:red", hatch="///"))
        names.append(flag)
        title += f"\nhatched, red edge: {flag} (see the registration views and docs/registration.md)"
    if handles:  # in the first unused panel, else below the panels
        if len(metrics) < axes.size:
            spare = axes.flat[len(metrics)]
            spare.set_visible(True)
            spare.axis("off")
            spare.legend(handles, names, title=group, loc="center", fontsize=10)
        else:
            fig.legend(handles, names, title=group, loc="outside lower center", ncols=len(handles),
                       fontsize=9)
    fig.suptitle(title, fontsize=12)
    fig.canvas.draw()  # the layout, then drop the labels of panels whose bars are too narrow for them
    for k, texts in labels.items():
        if _bar_width_pt(axes.flat[k], width) < 1.3 * label_pt:
            for text in texts:
                text.set_visible(False)
    return fig
