"""Report figures (workflow_scripts/report/, plot_* scripts) on small synthetic inputs with
known values, and the Snakemake report built from them (slow: a DAG run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from tests.report_inputs import (
    cylinder,
    make_kitti_extra_tables,
    make_report_inputs,
    write_mesh_ply,
)
from workflow_scripts import (
    plot_eval_metrics,
    plot_training_curves,
)
from workflow_scripts.endo.trajectory import camera_centres
from workflow_scripts.report.curves import curves_figure, moving_average, read_history
from workflow_scripts.report.depth import colorize, robust_range, select_frames
from workflow_scripts.report.figure import plt
from workflow_scripts.report.metrics import metrics_figure
from workflow_scripts.report.registration import read_residuals, residual_stats
from workflow_scripts.report.sfm import principal_axes
from workflow_scripts.util import InputDataError
from workflow_scripts.util.ply import read_ply

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(height, width) of a PNG file, checking that it is one."""
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    image = cv2.imread(str(path))
    return image.shape[:2]


# ------------------------------------------------------------------ library: exact values


def test_select_frames_spreads_evenly_with_both_ends():
    assert select_frames(10, 4).tolist() == [0, 3, 6, 9]
    assert select_frames(3, 8).tolist() == [0, 1, 2]
    assert select_frames(5, 1).tolist() == [0]
    assert select_frames(0, 4).tolist() == []


def test_robust_range_uses_valid_finite_values_only():
    values = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, np.nan, 100.0, -50.0]])
    valid = np.array([[True, True, True, True], [True, True, False, False]])
    assert robust_range(values, valid, (0, 100)) == (0.0, 4.0)
    assert robust_range(values, valid, (0, 50)) == (0.0, 2.0)
    lo, hi = robust_range(np.full((2, 2), 3.0))
    assert lo == 3.0 and hi > 3.0  # a constant map still gets a non-empty range
    assert robust_range(np.full((2, 2), np.nan)) == (0.0, 1.0)


def test_colorize_maps_range_ends_and_blacks_out_invalid():
    values = np.array([[0.0, 5.0, 10.0, 20.0]])
    valid = np.array([[True, True, False, True]])
    rgb = colorize(values, 0.0, 10.0, "gray", valid)
    assert rgb.shape == (1, 4, 3)
    np.testing.assert_allclose(rgb[0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(rgb[0, 1], 0.5, atol=0.01)  # 256-level colour map
    np.testing.assert_allclose(rgb[0, 2], 0.0)  # invalid
    np.testing.assert_allclose(rgb[0, 3], 1.0, atol=1e-6)  # clipped at vmax
    with pytest.raises(ValueError, match="expected an"):
        colorize(np.zeros((1, 2, 3)), 0, 1)


def test_moving_average_is_trailing_mean():
    np.testing.assert_allclose(moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(moving_average(np.array([1.0, 3.0]), 1), [1.0, 3.0])


def test_camera_centres_invert_world_to_camera_poses():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R = q * np.sign(np.linalg.det(q))
    centre = np.array([1.0, -2.0, 3.0])
    cam_from_world = np.eye(4)
    cam_from_world[:3, :3], cam_from_world[:3, 3] = R, -R @ centre
    np.testing.assert_allclose(camera_centres(cam_from_world[None]), centre[None], atol=1e-12)


def test_principal_axes_are_a_right_handed_frame_by_spread():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(500, 3)) * [1.0, 10.0, 3.0]
    mean, axes = principal_axes(points)
    np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(axes) == pytest.approx(1.0)
    assert np.argmax(np.abs(axes[0])) == 1 and np.argmax(np.abs(axes[1])) == 2
    np.testing.assert_allclose(mean, points.mean(0))


def test_residual_stats_and_reader(tmp_path):
    stats = residual_stats(np.array([1.0, 2.0, 2.0, 3.0]))
    assert stats["n"] == 4 and stats["mean"] == 2.0 and stats["median"] == 2.0 and stats["max"] == 3.0
    assert stats["rmse"] == pytest.approx(np.sqrt(18 / 4))
    good = tmp_path / "r.npy"
    np.save(good, np.array([0.5, 1.5], np.float32))
    np.testing.assert_allclose(read_residuals(good, n_points=2), [0.5, 1.5])
    with pytest.raises(InputDataError, match="2 residuals for a cloud of 3 points"):
        read_residuals(good, n_points=3)
    for bad in (np.zeros((2, 2)), np.array([1.0, -1.0]), np.array([np.nan])):
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(InputDataError, match="bad.npy"):
            read_residuals(tmp_path / "bad.npy")


# ------------------------------------------------------------------ figures on synthetic inputs


def test_read_ply_round_trip_with_faces_and_properties(tmp_path):
    verts, tris = cylinder(n_around=8, n_along=3)
    write_mesh_ply(tmp_path / "ct.ply", verts, tris, {"nx": np.ones(len(verts))})
    ply = read_ply(tmp_path / "ct.ply", need_faces=True)
    np.testing.assert_allclose(ply.vertices, verts.astype(np.float32))
    assert ply.faces.tolist() == tris.tolist() and list(ply.properties) == ["nx"] and ply.colors is None
    write_mesh_ply(tmp_path / "cloud.ply", verts, None)
    assert read_ply(tmp_path / "cloud.ply").faces is None
    with pytest.raises(InputDataError, match="no faces"):
        read_ply(tmp_path / "cloud.ply", need_faces=True)
    with pytest.raises(InputDataError, match="file not found"):
        read_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_text("not a ply")
    with pytest.raises(InputDataError, match="cannot be read as PLY"):
        read_ply(tmp_path / "junk.ply")


def test_training_curves_and_history_checks(tmp_path):
    paths = []
    for stage, n in (("teacher", 30), ("student", 20), ("finetune", 10)):
        step = np.arange(1, n + 1)
        table = pd.DataFrame({"step": step, "loss": 1.0 / step, "lr": 1e-4, "seconds": step * 0.5,
                              "reprojection": 0.5 / step, "smooth": 0.01 + 0 * step})
        paths.append(tmp_path / f"{stage}.csv")
        table.to_csv(paths[-1], index=False)
    plot_training_curves.main(paths, ["teacher", "student", "finetune"], "kitti", tmp_path / "curves.png",
                              smooth=3)
    h, w = png_size(tmp_path / "curves.png")
    assert w > 2 * h  # three panels side by side
    pd.DataFrame({"step": [1], "lr": [1e-4]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputDataError, match=r"columns \['loss'\] missing"):
        read_history(tmp_path / "bad.csv")


def test_training_curves_draw_the_loss_terms_not_the_diagnostics():
    step = np.arange(1, 21)
    table = pd.DataFrame({"step": step, "loss": 1.0 / step, "lr": 1e-4, "reprojection": 0.5 / step,
                          "masked_pixels": 0.0 * step, "iou_threshold": 0.5, "translation": 0.01,
                          "translation_forward": 0.9})
    fig = curves_figure([table], ["teacher"], "t", smooth=1)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["_child0", "loss", "reprojection"]  # the raw total, then the drawn terms
    assert ax.get_yscale() == "log"  # a diagnostic at 0 (no masked pixel) does not lose the log axis
    plt.close(fig)


def test_eval_bars_with_numeric_columns(tmp_path):
    table = pd.DataFrame({"stage": ["teacher", "teacher", "finetune", "finetune"], "sequence": ["a", "b"] * 2,
                          "rmse_mm": [1.0, 2.0, 0.5, 0.7], "median_mm": [0.8, 1.5, 0.4, 0.5],
                          "note": ["x"] * 4})
    table.to_csv(tmp_path / "endo_eval.csv", index=False)
    plot_eval_metrics.main(tmp_path / "endo_eval.csv", "numeric", "stage", "sequence", "endo",
                           tmp_path / "e.png")
    png_size(tmp_path / "e.png")
    with pytest.raises(InputDataError, match=r"columns \['abs_rel'\] missing"):
        plot_eval_metrics.main(tmp_path / "endo_eval.csv", ["abs_rel"], "stage", None, "x",
                               tmp_path / "f.png")
    plt.close("all")


def test_eval_bars_hatch_flagged_rows():
    """The ambiguous registration's bars (and only its) are hatched and labelled; the title says why."""
    table = pd.DataFrame({"stage": ["teacher", "student"], "sequence": ["a", "a"], "ambiguous": [True, False],
                          "residual_median_mm": [0.3, 0.9]})
    fig = metrics_figure(table, ["residual_median_mm"], "stage", "sequence", "endo", flag="ambiguous")
    bars = fig.axes[0].patches
    assert [b.get_hatch() for b in bars] == ["///", None]
    assert "ambiguous" in fig._suptitle.get_text()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
    assert any(t.get_text() == "ambiguous" for legend in legends for t in legend.get_texts())
    plain = metrics_figure(table.assign(ambiguous=False), ["residual_median_mm"], "stage", None, "e",
                           flag="ambiguous")
    assert all(b.get_hatch() is None for b in plain.axes[0].patches)
    plt.close("all")


# the KITTI depth figures: tests/test_report_kitti.py

REPORT_RULES = ["plot_kitti_depth", "plot_kitti_per_frame", "plot_training_curves", "plot_kitti_eval",
                "kitti_eval_table", "plot_sfm_summary", "sfm_summary_table", "plot_endo_depth",
                "plot_registration_residuals", "plot_registration_view", "plot_endo_eval",
                "plot_kitti_masking", "eval_table_html", "report_figures"]


@pytest.mark.slow
def test_snakemake_report_shows_the_figures(tmp_path):
    """The report rules in the DAG on prepared inputs (only they may run), then
    `snakemake --report`: the HTML embeds every figure and both tables; in Chromium it shows them."""
    endo_targets = make_report_inputs(tmp_path)
    make_kitti_extra_tables(tmp_path)
    sequence = {"name": "seqA", "frames": 10, "start": 6.0, "step": 0.3}
    masking = {"enabled": True, "control": True}  # the masking figure needs the control
    config = {"demo": {"endoscopy": {"sequences": [sequence]}}, "endoscopy": {"split": {"test": []}},
              "kitti": {"train": {"finetune": {"masking": masking}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    common = ["--configfile", str(tmp_path / "config.yaml"), "--directory", str(tmp_path), "--snakefile",
              str(ROOT / "Snakefile"), "--allowed-rules", *REPORT_RULES]
    targets = ["report_figures", *endo_targets]
    run = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--cores", "2", *common],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = tmp_path / "report.html"
    run = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--report", str(report), *common],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    html = report.read_text()
    figures = ["results/kitti/report/depth_frames.png", "results/kitti/report/per_frame_abs_rel.png"]
    figures += ["results/kitti/report/training_curves.png", "results/kitti/report/eval_metrics.png",
                "results/kitti/report/masking.png",
                "results/endo/report/sfm/seqA.png", *endo_targets]
    tables = ["results/kitti_eval.csv", "results/endo_eval.csv", "results/endo/report/sfm_summary.csv"]
    pages = [f"results/kitti/report/{t}.html" for t in ("kitti_eval", "kitti_seg_eval", "kitti_pose_eval")]
    pages.append("results/endo/report/endo_eval.html")
    for name in [*figures, *tables, *pages]:
        assert f'"{name}"' in html, name
    assert html.count('"data:image/png;') >= len(figures)  # embedded, not linked
    assert html.count('"data:text/html;') >= len(pages)  # shown inline, not a download
    for name in ("Driving (KITTI)", "Endoscopy", "Registration to CT", "Evaluation", "Training"):
        assert name in html

    from tests.report_browser import chromium, dump_dom, report_categories, save_views, table_headers

    if chromium() is None:
        pytest.skip("chromium not installed: the HTML was checked, not its rendering")
    # the tables as <table>s in the report's viewer (an iframe), after its JavaScript ran
    for page, header in (("kitti/report/kitti_eval.html", "RMSE \u2193 (m)"),
                         ("endo/report/endo_eval.html", "residual median \u2193 (mm)"),
                         ("kitti/report/kitti_pose_eval.html", "ATE \u2193 (m)")):
        dom, frame = dump_dom(report, tmp_path / "dom.html", page, "Evaluation")
        assert "<iframe" in dom and 'data-table-width="' in dom, page
        assert header in table_headers(frame)[0] and "stage" in table_headers(frame)[0], page
    listed = report_categories(html)  # every figure in the side bar's lists
    assert set(figures) <= {p for sub in listed.values() for paths in sub.values() for p in paths}
    # a screenshot of each (sub)category showing its first result, and of the table views
    views = {"home": (None, None), "registration": ("registration/seqA_residuals.png", "Endoscopy")}
    views |= {re.sub(r"\W+", "_", f"{c} {s}".lower()).strip("_"): (next(p for p in paths if p.endswith(
              (".png", ".html"))), c, s) for c, sub in listed.items() for s, paths in sub.items()}
    views |= {f"{t}_table": (f"{t}.html", "Evaluation")
              for t in ("kitti_eval", "endo_eval", "kitti_seg_eval")}
    shots = save_views(report, tmp_path, views, os.environ.get("REPORT_SCREENSHOTS"))
    for name, shot in shots.items():  # a JavaScript error leaves the page blank
        # (e.g. a label, not the first, with two values on half of the results each: Snakemake's toggle)
        assert cv2.imread(str(shot)).std() > 10, f"{name}: blank page, the report's JavaScript failed"
    shown, front = cv2.imread(str(shots["registration"])), cv2.imread(str(shots["home"]))
    assert shown.shape == front.shape == (1000, 1400, 3)
    # the figure (white page, coloured curves) replaces the rule graph on the right
    assert np.abs(shown.astype(int) - front.astype(int)).mean() > 2.0
