"""An evaluation table (CSV) as a self-contained HTML page for the Snakemake report, where an
HTML result is shown inline (in an iframe) while a CSV is only a download link.

Headers are readable labels with unit and better direction (directions.py), metrics show 3
significant digits, counts whole numbers, long paths (``source``) small and grey, baseline rows
(constant, identity, majority) in italics, and the best value of every metric column bold
(per group, e.g. per scaling, when a group column is given).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd

from workflow_scripts.report.directions import Column, describe, is_metric

__all__ = ["BASELINE_STAGES", "SMALL_COLUMNS", "best_rows", "column_order", "format_value", "header_cell",
           "table_html"]

BASELINE_STAGES = frozenset({"constant", "identity", "majority"})  # reference rows, not trained stages
SMALL_COLUMNS = frozenset({"source"})  # long paths: shown small and grey

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 12px; color: #1e293b; }
h1 { font-size: 16px; margin: 0 0 4px 0; }
p.note { font-size: 12px; color: #475569; margin: 0 0 8px 0; }
div.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e2e8f0; white-space: nowrap; }
th { background: #f1f5f9; position: sticky; top: 0; text-align: center; vertical-align: bottom;
     white-space: normal; min-width: 3em; max-width: 9em; }
th .unit { font-weight: normal; color: #475569; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.small { font-size: 10px; color: #64748b; }
td.best { font-weight: bold; }
td.flag { color: #b91c1c; font-weight: bold; }
tr.baseline td { font-style: italic; color: #64748b; }
tbody tr:hover { background: #f8fafc; }
"""


def format_value(value: object, integer: bool | None = None) -> str:
    """A cell's text: "–" for missing, "yes"/"no" for booleans, whole numbers for counts
    (``integer`` true; None: integer types), other numbers with 3 significant digits
    (thousands as whole numbers, no exponent below 1e6; a metric passes ``integer`` false)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, Integral) and integer is not False:
        return f"{int(value):,}"
    if isinstance(value, Real):
        v = float(value)
        if v == 0 or (integer and v.is_integer()):
            return f"{int(v):,}"
        if 1e3 <= abs(v) < 1e6:
            return f"{v:,.0f}"
        text = f"{v:#.3g}"
        return text.rstrip(".") if "e" not in text else f"{v:.3g}"
    return str(value)


def header_cell(column: str) -> str:
    """``<th>`` of ``column``: label, unit on a second line, better direction; the column name
    and the direction in words as tooltip. An unknown column shows its name."""
    info = describe(column) or Column(column)
    words = {"higher": "higher is better", "lower": "lower is better"}.get(info.better or "", "")
    tip = html.escape(f"{column}" + (f": {words}" if words else ""), quote=True)
    label = html.escape(info.label) + (f" {info.arrow}" if info.arrow else "")
    unit = f'<br><span class="unit">({html.escape(info.unit)})</span>' if info.unit else ""
    return f'<th title="{tip}">{label}{unit}</th>'


def best_rows(table: pd.DataFrame, column: str, group: str | None = None) -> set[int]:
    """Row positions holding the best value of metric ``column`` (per value of ``group``),
    baseline stages left out; empty for a non-metric column."""
    info = describe(column)
    if info is None or info.better is None:
        return set()
    values = pd.to_numeric(table[column], errors="coerce").reset_index(drop=True)
    if "stage" in table.columns:
        values[table["stage"].reset_index(drop=True).isin(BASELINE_STAGES)] = float("nan")
    if group and group in table.columns:
        keys = table[group].reset_index(drop=True)
    else:
        keys = pd.Series(0, values.index)
    best: set[int] = set()
    for _, part in values.groupby(keys, sort=False):
        part = part.dropna()
        if len(part):
            target = part.max() if info.better == "higher" else part.min()
            best.update(int(i) for i in part.index[part == target])
    return best


def _is_count(table: pd.DataFrame, column: str) -> bool:
    """Whether a non-metric numeric column holds whole numbers only (frames, points, ...)."""
    values = pd.to_numeric(table[column], errors="coerce").dropna()
    info = describe(column)
    return (info is None or info.better is None) and len(values) > 0 and bool((values % 1 == 0).all())


def column_order(table: pd.DataFrame, drop: Sequence[str] = ()) -> list[str]:
    """The shown columns: the keys (text columns before the first numeric one), then the
    metrics, then the other columns, each in table order; ``drop`` left out."""
    columns = [c for c in table.columns if c not in set(drop)]
    keys = []
    for c in columns:
        if pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c]):
            break
        keys.append(c)
    metrics = [c for c in columns if c not in keys and is_metric(c)]
    return keys + metrics + [c for c in columns if c not in keys and c not in metrics]


def table_html(table: pd.DataFrame, title: str, source: str, group: str | None = None,
               drop: Sequence[str] = ()) -> str:
    """The page: ``title``, a note naming the CSV ``source``, and ``table`` (keys, metrics,
    then other columns; ``drop`` left out); the best metric values bold per value of ``group``."""
    columns = column_order(table, drop)
    counts = {c for c in columns if _is_count(table, c)}
    best = {c: best_rows(table, c, group) for c in columns}
    head = "".join(header_cell(c) for c in columns)
    rows = []
    for i, (_, row) in enumerate(table.iterrows()):
        cells = []
        for c in columns:
            value = row[c]
            classes = []
            if isinstance(value, Real) and not isinstance(value, bool | np.bool_):
                classes.append("num")
            if c in SMALL_COLUMNS:
                classes.append("small")
            if i in best[c]:
                classes.append("best")
            if isinstance(value, bool | np.bool_) and value and c == "ambiguous":
                classes.append("flag")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            integer = True if c in counts else (False if is_metric(c) else None)
            cells.append(f"<td{cls}>{html.escape(format_value(value, integer))}</td>")
        baseline = ' class="baseline"' if str(row.get("stage", "")) in BASELINE_STAGES else ""
        rows.append(f"<tr{baseline}>{''.join(cells)}</tr>")
    by = f" per {html.escape(group)}" if group else ""
    note = (f"From <code>{html.escape(source)}</code> (download it in this category). \u2191 higher is "
            f"better, \u2193 lower is better; 3 significant digits; bold: the best stage{by}; "
            f"italics: baselines ({', '.join(sorted(BASELINE_STAGES))}).")
    left_out = [c for c in drop if c in table.columns]
    if left_out:
        note += f" Left out here (in the CSV): {html.escape(', '.join(left_out))}."
    name = html.escape(title)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{name}</title>'
            f'<style>{_STYLE}</style></head><body>\n<h1>{name}</h1>\n<p class="note">{note}</p>\n'
            f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows)
            + "\n</tbody></table></div>\n</body></html>\n")
