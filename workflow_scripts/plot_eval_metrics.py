"""Rules plot_kitti_eval and plot_endo_eval: bar charts of an evaluation table
(workflow_scripts/report/metrics.py)."""

import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.metrics import metrics_figure, read_table
from workflow_scripts.report.registration_view import OFF_DEG

log = logging.getLogger("plot_eval_metrics")


WRONG_FLAG = f"ambiguous, or > {OFF_DEG:g}\u00b0 from the true pose"


def with_truth_flag(table: pd.DataFrame, flag: str | None) -> tuple[pd.DataFrame, str | None]:
    """On the demo (``truth_rotation_deg`` known) the ``ambiguous`` flag also takes the rows
    registered more than OFF_DEG from the true pose (a confident registration can be wrong):
    the table with that column (named WRONG_FLAG) and its name; else both unchanged."""
    if flag != "ambiguous" or "truth_rotation_deg" not in table.columns:
        return table, flag
    wrong = table["truth_rotation_deg"].to_numpy(float) > OFF_DEG  # NaN (no truth): not wrong
    return table.assign(**{WRONG_FLAG: table[flag].astype(bool).to_numpy() | wrong}), WRONG_FLAG


def main(table_path: Path, metrics: list[str] | str, x: str, group: str | None, title: str,
         out: Path, flag: str | None = None, flag_metrics: list[str] | None = None) -> None:
    """``metrics``: column names, or "numeric" for every numeric column but ``x``, ``group`` and
    ``flag`` (a boolean column whose true rows' bars are hatched; ``ambiguous`` also hatches the
    demo's registrations that are wrong by its truth, :func:`with_truth_flag`)."""
    required = [x] + ([group] if group else []) + ([flag] if flag else [])
    table = read_table(table_path, required if metrics == "numeric" else [*required, *metrics])
    table, flag = with_truth_flag(table, flag)  # the flag column may be a derived one
    keys = [x] + ([group] if group else []) + ([flag] if flag else [])
    if group == "sequence" and "split" in table.columns:  # the held-out (test) sequences apart
        table = table.assign(sequence=table["sequence"] + " (" + table["split"].fillna("train") + ")")
    if metrics == "numeric":
        metrics = [c for c in table.columns if c not in keys and pd.api.types.is_numeric_dtype(table[c])]
    save_png(metrics_figure(table, metrics, x, group, title, flag=flag, flag_metrics=flag_metrics), out)
    log.info("%s: %d rows of %s", out, len(table), table_path)


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    p = smk.params.plot
    metrics = p["metrics"] if isinstance(p["metrics"], str) else list(p["metrics"])
    main(Path(smk.input[0]), metrics, p["x"], p["group"], p["title"], Path(smk.output[0]), p.get("flag"),
         p.get("flag_metrics"))
