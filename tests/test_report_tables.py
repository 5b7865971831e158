"""The evaluation tables in the report: every column of every table has a better direction or is
an explicit non-metric column (columns taken from the writers themselves), the HTML pages
(workflow_scripts/report/tables.py, eval_table_html.py) and the legibility of the bar charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.report_browser import table_headers
from workflow_scripts import eval_table_html, evaluate_pose, plot_eval_metrics
from workflow_scripts.endo.evaluate import EVAL_COLUMNS
from workflow_scripts.kitti.evaluate import KittiEvalOptions, evaluate_stage
from workflow_scripts.kitti.pose_eval import PoseEvalOptions
from workflow_scripts.report.directions import METRICS, NON_METRICS, describe, is_metric, unclassified
from workflow_scripts.report.figure import plt
from workflow_scripts.report.metrics import metrics_figure
from workflow_scripts.report.tables import best_rows, column_order, format_value, table_html
from workflow_scripts.util import InputDataError


def kitti_eval_columns() -> list[str]:
    """Columns of results/kitti_eval.csv as evaluate_stage writes them (3 tiny frames)."""
    rng = np.random.default_rng(0)
    gts = [rng.uniform(5, 50, (40, 120)) for _ in range(3)]
    disps = [rng.uniform(0.02, 0.2, (8, 24)).astype(np.float32) for _ in range(3)]
    labels = [np.full((40, 120), 13, np.uint8) for _ in range(3)]  # 13 = car: movable
    return list(evaluate_stage(gts, disps, "teacher", KittiEvalOptions(), 0.1, "x.npy", labels).columns)


def kitti_seg_eval_columns() -> list[str]:
    """Columns of results/kitti_seg_eval.csv as seg_eval_table writes them."""
    from workflow_scripts.kitti.semantic_eval import seg_eval_table  # torch: imported when needed

    labels = [np.array([[0, 1], [2, 255]], np.uint8)]
    return list(seg_eval_table(labels, {"finetune": np.array([[[0, 1], [1, 1]]], np.uint8)}).columns)


def kitti_pose_eval_columns() -> list[str]:
    """Columns of results/kitti_pose_eval.csv as evaluate_pose writes them (8 frames)."""
    rel = np.tile(np.eye(4), (7, 1, 1))
    rel[:, 2, 3] = 1.0  # 1 m forward per frame
    return list(evaluate_pose.score_row("finetune", "00", rel, rel, PoseEvalOptions()))


TABLE_COLUMNS = {
    "kitti_eval": kitti_eval_columns,
    "endo_eval": lambda: list(EVAL_COLUMNS),
    "kitti_seg_eval": kitti_seg_eval_columns,
    "kitti_pose_eval": kitti_pose_eval_columns,
}


@pytest.mark.parametrize("table", TABLE_COLUMNS)
def test_every_column_has_a_direction_or_is_no_metric(table):
    columns = TABLE_COLUMNS[table]()
    assert len(columns) > 3
    assert unclassified(columns) == [], f"{table}: add these columns to workflow_scripts/report/directions.py"
    assert any(is_metric(c) for c in columns)


def test_existing_result_tables_are_covered():
    tables = sorted((ROOT / "results").glob("*_eval.csv"))
    for path in tables:
        columns = list(pd.read_csv(path, nrows=0).columns)
        assert unclassified(columns) == [], f"{path}: columns not in workflow_scripts/report/directions.py"


def test_direction_lists_do_not_overlap_and_the_bar_charts_plot_metrics():
    assert not set(METRICS) & set(NON_METRICS)
    for key in ("stage", "sequence", "patient", "split", "frames", "points", "source", "scale_median",
                "register_seconds", "ambiguous", "truth_scale_ratio", "truth_rotation_deg",
                "truth_camera_rms_mm"):
        assert describe(key).better is None, key
    assert describe("a1").better == "higher" and describe("rmse").better == "lower"
    assert describe("iou_traffic_light").header() == "IoU traffic light \u2191"
    assert describe("rmse").header() == "RMSE (m) \u2193"
    assert describe("residual_median_mm").header() == "residual median (mm) \u2193"
    smk = (ROOT / "rules" / "report.smk").read_text()
    plots = smk[smk.index("EVAL_PLOTS = {"):smk.index("\n}\n", smk.index("EVAL_PLOTS = {")) + 3]
    namespace: dict = {}
    exec(plots, namespace)  # noqa: S102 - the project's own rule file
    for plot in namespace["EVAL_PLOTS"].values():
        assert all(is_metric(m) for m in plot["metrics"]), plot["metrics"]


def test_format_value():
    assert [format_value(v) for v in (0.123456, 1.5, 12.345, 0.000123, 5.4, 0.0)] == \
        ["0.123", "1.50", "12.3", "0.000123", "5.40", "0"]
    assert format_value(519538) == "519,538" and format_value(1234.6) == "1,235"
    assert format_value(60.0, integer=True) == "60" and format_value(float("nan")) == "\u2013"
    assert format_value(np.int64(5), integer=False) == "5.00"  # a metric the CSV wrote as "5"
    assert format_value(np.bool_(True)) == "yes" and format_value(False) == "no"
    assert format_value("seq01") == "seq01" and format_value(2.5e7) == "2.5e+07"


def test_best_rows_per_group_leave_out_baselines():
    table = pd.DataFrame({"stage": ["teacher", "finetune", "constant"] * 2,
                          "scaling": ["median"] * 3 + ["stereo"] * 3,
                          "abs_rel": [0.2, 0.1, 0.05, 0.3, 0.4, 0.01],
                          "a1": [0.7, 0.8, 0.9, 0.7, 0.6, 0.9]})
    assert best_rows(table, "abs_rel", "scaling") == {1, 3}
    assert best_rows(table, "a1", "scaling") == {1, 3}
    assert best_rows(table, "a1") == {1}
    assert best_rows(table, "stage") == set()


def test_html_table_headers_order_and_cells(tmp_path):
    rows = [{"stage": s, "sequence": "seq01", "split": "train", "frames": 60, "ambiguous": s == "teacher",
             "residual_median_mm": v, "delta1": d, "source": "results/x/very/long/path.npy"}
            for s, v, d in (("teacher", 1.01845, 0.6), ("finetune", 0.966354, 0.66), ("constant", 1.76, 0.4))]
    pd.DataFrame(rows).to_csv(tmp_path / "endo_eval.csv", index=False)
    page = eval_table_html.main(tmp_path / "endo_eval.csv", "Endoscopy", tmp_path / "t.html", "sequence",
                                  ["source"])
    assert (tmp_path / "t.html").read_text() == page
    [headers] = table_headers(page)
    assert headers == ["stage", "sequence", "split", "residual median \u2193 (mm)", "\u03b4<1.25 \u2191",
                       "frames", "ambiguous"]
    assert "<td class=\"num best\">0.966</td>" in page and "<td class=\"num\">1.02</td>" in page
    assert '<td class="flag">yes</td>' in page and '<tr class="baseline">' in page
    assert "very/long" not in page and "Left out here (in the CSV): source" in page
    assert column_order(pd.read_csv(tmp_path / "endo_eval.csv"))[:3] == ["stage", "sequence", "split"]
    unknown = table_html(pd.DataFrame({"stage": ["a"], "mystery": [1.23456]}), "t", "x.csv")
    assert table_headers(unknown) == [["stage", "mystery"]] and ">1.23<" in unknown
    pd.DataFrame({"sequence": ["a"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputDataError, match=r"bad.csv.*columns \['stage'\] missing"):
        eval_table_html.main(tmp_path / "bad.csv", "t", tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


def _label_texts(fig: plt.Figure) -> list:
    return [t for ax in fig.axes for t in ax.texts if t.get_text()]


def test_bar_labels_are_legible_or_left_out(tmp_path):
    """Value labels are 8 pt or more and never overlap each other; with too many bars for them
    a panel has none (the values are in the HTML table)."""
    stages = ["teacher", "student", "finetune", "constant"]
    few = pd.DataFrame({"stage": stages * 2, "scaling": ["median"] * 4 + ["stereo"] * 4,
                        **{m: np.linspace(0.1, 0.9, 8) for m in ("abs_rel", "rmse", "a1")}})
    fig = metrics_figure(few, ["abs_rel", "rmse", "a1"], "stage", "scaling", "kitti")
    fig.canvas.draw()
    shown = [t for t in _label_texts(fig) if t.get_visible()]
    assert len(shown) == 3 * 8 and all(t.get_fontsize() >= 8 for t in shown)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in shown]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1:])
    assert not any(t.overlaps(fig._suptitle.get_window_extent(renderer)) for t in titles)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["abs rel \u2193", "RMSE (m) \u2193", "\u03b4<1.25 \u2191"]
    many = pd.DataFrame({"stage": np.repeat(stages, 12), "sequence": [f"seq{i:02d}" for i in range(12)] * 4,
                         "abs_rel": 0.2})
    crowded = metrics_figure(many, ["abs_rel"], "stage", "sequence", "endo")
    assert not any(t.get_visible() for t in _label_texts(crowded))
    plt.close("all")


def test_eval_bars_of_the_real_demo_tables(tmp_path):
    """The charts of results/*_eval.csv when the demo has written them (view the PNGs in tmp_path)."""
    smk = (ROOT / "rules" / "report.smk").read_text()
    namespace: dict = {}
    exec(smk[smk.index("EVAL_PLOTS = {"):smk.index("\n}\n", smk.index("EVAL_PLOTS = {")) + 3], namespace)  # noqa: S102
    done = 0
    for branch, plot in namespace["EVAL_PLOTS"].items():
        path = ROOT / "results" / f"{branch}_eval.csv"
        if path.exists():
            plot_eval_metrics.main(path, plot["metrics"], plot["x"], plot["group"], plot["title"],
                                   tmp_path / f"{branch}.png", plot.get("flag"))
            done += 1
    if not done:
        pytest.skip("no results/*_eval.csv: run the demo first")


def test_demo_registrations_wrong_by_the_truth_are_flagged_with_the_ambiguous_ones(tmp_path):
    """A confident registration can be wrong: on the demo (truth known) the endoscopy bars hatch
    the rows more than 10 degrees from the true pose too; without truth only the ambiguous ones."""
    table = pd.DataFrame({"stage": ["teacher", "student", "finetune", "constant"], "sequence": "seq01",
                          "ambiguous": [False, True, False, False],
                          "residual_median_mm": [0.8, 0.9, 0.7, 1.7],
                          "truth_rotation_deg": [171.7, 4.0, 3.0, np.nan]})
    flagged, name = plot_eval_metrics.with_truth_flag(table, "ambiguous")
    assert name == "ambiguous, or > 10\u00b0 from the true pose"
    assert flagged[name].tolist() == [True, True, False, False]
    plain, same = plot_eval_metrics.with_truth_flag(table.drop(columns="truth_rotation_deg"), "ambiguous")
    assert same == "ambiguous" and plain["ambiguous"].tolist() == [False, True, False, False]
    table.to_csv(tmp_path / "endo_eval.csv", index=False)
    plot_eval_metrics.main(tmp_path / "endo_eval.csv", ["residual_median_mm"], "stage", "sequence", "endo",
                           tmp_path / "bars.png", flag="ambiguous")
    fig = metrics_figure(flagged.assign(abs_rel=0.2), ["residual_median_mm", "abs_rel"], "stage", "sequence",
                         "endo", flag=name, flag_metrics=["residual_median_mm"])
    assert [b.get_hatch() for b in fig.axes[0].patches] == ["///", "///", None, None]
    assert [b.get_hatch() for b in fig.axes[1].patches] == [None] * 4  # depth against SfM: not the CT
    assert name in fig._suptitle.get_text()
    plt.close("all")
