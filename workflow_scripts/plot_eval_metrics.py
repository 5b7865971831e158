"""Rules plot_kitti_eval and plot_endo_eval: bar charts of an evaluation table
(workflow_scripts/report/metrics.py)."""

import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.metrics import metrics_figure, read_table

log = logging.getLogger("plot_eval_metrics")


def main(table_path: Path, metrics: list[str] | str, x: str, group: str | None, title: str,
         out: Path, flag: str | None = None) -> None:
    """``metrics``: column names, or "numeric" for every numeric column but ``x``, ``group`` and
    ``flag`` (a boolean column whose true rows' bars are hatched)."""
    keys = [x] + ([group] if group else []) + ([flag] if flag else [])
    table = read_table(table_path, keys if metrics == "numeric" else [*keys, *metrics])
    if group == "sequence" and "split" in table.columns:  # the held-out (test) sequences apart
        table = table.assign(sequence=table["sequence"] + " (" + table["split"].fillna("train") + ")")
    if metrics == "numeric":
        metrics = [c for c in table.columns if c not in keys and pd.api.types.is_numeric_dtype(table[c])]
    save_png(metrics_figure(table, metrics, x, group, title, flag=flag), out)
    log.info("%s: %d rows of %s", out, len(table), table_path)


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    p = smk.params.plot
    metrics = p["metrics"] if isinstance(p["metrics"], str) else list(p["metrics"])
    main(Path(smk.input[0]), metrics, p["x"], p["group"], p["title"], Path(smk.output[0]), p.get("flag"))
