"""What every column of the evaluation tables means: for a metric its readable label, unit and
better direction; for any other column (keys, counts, diagnostics) a label only. One list for
the bar charts (metrics.py) and the HTML tables (tables.py) of the report.

Tables covered: results/kitti_eval.csv (workflow_scripts/kitti/evaluate.py), results/endo_eval.csv
(workflow_scripts/endo/evaluate.py EVAL_COLUMNS), results/kitti_seg_eval.csv
(workflow_scripts/kitti/semantic_eval.py: one ``iou_<class>`` column per Cityscapes train class)
and results/kitti_pose_eval.csv (workflow_scripts/evaluate_pose.py). tests/test_report_tables.py
fails when a writer gains a column that is in neither list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["METRICS", "NON_METRICS", "METRIC_PREFIXES", "Column", "describe", "unclassified", "is_metric"]


@dataclass(frozen=True)
class Column:
    """A table column as shown: ``label`` (readable), ``unit`` ("" = none), ``better``
    ("higher" / "lower" for a metric, None for a non-metric column)."""

    label: str
    unit: str = ""
    better: Literal["higher", "lower"] | None = None

    @property
    def arrow(self) -> str:
        """↑ (higher is better), ↓ (lower is better), or "" for a non-metric column."""
        return {"higher": "\u2191", "lower": "\u2193"}.get(self.better or "", "")

    def header(self, arrow: bool = True) -> str:
        """One-line header, e.g. "RMSE (m) ↓"."""
        text = f"{self.label} ({self.unit})" if self.unit else self.label
        return f"{text} {self.arrow}" if arrow and self.arrow else text


def _m(label: str, better: Literal["higher", "lower"], unit: str = "") -> Column:
    return Column(label, unit, better)


# Metrics by column name (the same name means the same thing in every table).
METRICS: dict[str, Column] = {
    # Eigen metrics (kitti_eval; abs_rel and delta1 also in endo_eval, against the SfM points)
    "abs_rel": _m("abs rel", "lower"),
    "sq_rel": _m("sq rel", "lower", "m"),
    "rmse": _m("RMSE", "lower", "m"),
    "rmse_log": _m("RMSE log", "lower"),
    "log10": _m("log10", "lower"),
    "a1": _m("\u03b4<1.25", "higher"),
    "a2": _m("\u03b4<1.25\u00b2", "higher"),
    "a3": _m("\u03b4<1.25\u00b3", "higher"),
    "abs_rel_movable": _m("abs rel, movable classes", "lower"),
    "delta1": _m("\u03b4<1.25", "higher"),
    # registration to the CT (endo_eval)
    "residual_mean_mm": _m("residual mean", "lower", "mm"),
    "residual_median_mm": _m("residual median", "lower", "mm"),
    "residual_rms_mm": _m("residual RMS", "lower", "mm"),
    "residual_p95_mm": _m("residual p95", "lower", "mm"),
    "runner_up_ratio": _m("runner-up ratio", "higher"),  # confidence of the best pose (docs/registration.md)
    # segmentation (kitti_seg_eval)
    "miou": _m("mIoU", "higher"),
    "pixel_accuracy": _m("pixel accuracy", "higher"),
    # pose (kitti_pose_eval)
    "ate_mean": _m("ATE", "lower", "m"),
    "re_mean": _m("RE", "lower", "rad"),
}

# Metric families: a column ``<prefix><name>`` (e.g. iou_road) is this metric of ``<name>``.
METRIC_PREFIXES: dict[str, Column] = {
    "iou_": _m("IoU", "higher"),
}

# Columns that are not metrics: keys, counts, scale factors, run times, flags, sanity checks.
NON_METRICS: dict[str, Column] = {
    "stage": Column("stage"),
    "scaling": Column("scaling"),
    "sequence": Column("sequence"),
    "patient": Column("patient"),
    "split": Column("split"),
    "protocol": Column("protocol"),
    "source": Column("source"),
    "n_frames": Column("frames"),
    "frames": Column("frames"),
    "n_snippets": Column("snippets"),
    "n_classes": Column("classes"),
    "points": Column("points"),
    "points_registered": Column("points registered"),
    "sparse_frames": Column("sparse frames"),
    "sparse_samples": Column("sparse samples"),
    "scale_median": Column("scale median"),
    "scale_std": Column("scale std / median"),
    "scale_mm_per_sfm_unit": Column("scale", "mm / SfM unit"),
    "register_seconds": Column("registration time", "s"),
    "ambiguous": Column("ambiguous"),
    "ate_std": Column("ATE std", "m"),
    "re_std": Column("RE std", "rad"),
    "truth_scale_ratio": Column("true scale ratio"),
    "truth_rotation_deg": Column("true rotation error", "\u00b0"),
    "truth_camera_rms_mm": Column("true camera RMS", "mm"),
}


def describe(column: str) -> Column | None:
    """The label, unit and direction of ``column``; None when it is in no list."""
    if column in METRICS:
        return METRICS[column]
    if column in NON_METRICS:
        return NON_METRICS[column]
    for prefix, family in METRIC_PREFIXES.items():
        if column.startswith(prefix) and len(column) > len(prefix):
            name = column[len(prefix):].replace("_", " ")
            return Column(f"{family.label} {name}", family.unit, family.better)
    return None


def is_metric(column: str) -> bool:
    """Whether ``column`` is a metric (has a better direction)."""
    found = describe(column)
    return found is not None and found.better is not None


def unclassified(columns: Iterable[str]) -> list[str]:
    """The columns that are neither a metric nor an explicit non-metric column."""
    return [c for c in columns if describe(c) is None]
