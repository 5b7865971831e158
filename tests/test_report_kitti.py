"""KITTI report figures (workflow_scripts/report/kitti_depth.py, plot_kitti_depth,
plot_kitti_per_frame) on synthetic ground truth and predictions with known values: the per-frame
abs_rel agrees with results/kitti_eval.csv, the depth figure is legible."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report_inputs import make_kitti_predictions, write_kitti_gt
from tests.test_report import png_size
from workflow_scripts import evaluate_depth, plot_kitti_depth, plot_kitti_per_frame
from workflow_scripts.kitti.evaluate import EvalOptions, KittiEvalOptions, eval_options, garg_crop
from workflow_scripts.report.figure import plt
from workflow_scripts.report.kitti_depth import (
    depth_norm,
    depth_range,
    depth_ticks,
    error_stage,
    frames_figure,
    load_stage_disparities,
    pipeline_order,
    scale_frame,
    spread_sparse,
)
from workflow_scripts.util import InputDataError

DRIVE = "2011_01_02/2011_01_02_drive_0003_sync"
H, W = 50, 150


def known_frames(tmp_path: Path) -> dict:
    """Two frames of dense ground truth and a stage's disparities at the ground truth's size:
    frame 0 predicts exactly half the depth (abs_rel 0 after median scaling); frame 1 has 10 m
    everywhere and predicts 5 m x (1 - 0.1, 1, 1 + 0.1) in turn along the columns (median ratio 2,
    abs_rel 0.1 x the share of columns off by 10 %)."""
    rows = np.arange(H, dtype=np.float32)[:, None]
    gt0 = np.broadcast_to(4.0 + 0.5 * rows, (H, W)).astype(np.float32)
    gt1 = np.full((H, W), 10.0, np.float32)
    pattern = np.tile(np.array([-1.0, 0.0, 1.0]), W // 3)[None, :]
    pred1 = np.broadcast_to(5.0 * (1 + 0.1 * pattern), (H, W))
    disps = np.stack([1.0 / (0.5 * gt0), 1.0 / pred1]).astype(np.float32)
    lines = [f"{DRIVE} {i:010d} l" for i in range(2)]
    split = tmp_path / "results" / "kitti" / "splits" / "eigen" / "test_files.txt"
    split.parent.mkdir(parents=True)
    split.write_text("".join(f"{ln}\n" for ln in lines))
    write_kitti_gt(tmp_path / "gt.npz", lines, (H, W), [gt0, gt1])
    np.save(tmp_path / "disps.npy", disps)
    _, _, left, right = garg_crop(H, W)
    off = np.abs(pattern[0, left:right]).mean()  # the evaluated columns' share off by 10 %
    return {"gts": [gt0, gt1], "disps": disps, "split": split, "abs_rel": [0.0, 0.1 * off]}


def test_per_frame_abs_rel_is_the_tables(tmp_path):
    """The per-frame values have the known values and their means are results/kitti_eval.csv's
    abs_rel (median rows), for a stage and for the constant baseline."""
    data = known_frames(tmp_path)
    evaluate = KittiEvalOptions()
    stage_rows = evaluate_depth.main(tmp_path / "gt.npz", tmp_path / "disps.npy", "teacher", evaluate, 0.1,
                                     tmp_path / "teacher.csv")
    constant_rows = evaluate_depth.main(tmp_path / "gt.npz", None, "constant", evaluate, 0.1,
                                        tmp_path / "constant.csv")
    disps = {"constant": None, "teacher": tmp_path / "disps.npy"}
    table = plot_kitti_per_frame.main(tmp_path / "gt.npz", disps,
                                      data["split"], eval_options(evaluate, "median", 0.1),
                                      tmp_path / "per_frame.png", tmp_path / "per_frame.csv")
    assert list(table.columns) == ["row", "frame", "teacher", "constant"]  # pipeline order
    np.testing.assert_allclose(table["teacher"], data["abs_rel"], atol=1e-6)
    median = {r.stage: r.abs_rel for r in pd.concat([stage_rows, constant_rows]).itertuples()
              if r.scaling == "median"}
    assert table["teacher"].mean() == pytest.approx(median["teacher"], rel=1e-12)
    assert table["constant"].mean() == pytest.approx(median["constant"], rel=1e-12)
    written = pd.read_csv(tmp_path / "per_frame.csv")
    assert written.frame.tolist() == [f"{DRIVE} {i:010d} l" for i in range(2)]
    np.testing.assert_allclose(written.teacher, table.teacher, rtol=1e-5)
    png_size(tmp_path / "per_frame.png")


def test_scale_frame_converts_as_the_evaluation(tmp_path):
    data = known_frames(tmp_path)
    opts = EvalOptions()
    exact = scale_frame(data["gts"][0], data["disps"][0], opts)
    assert exact.ratio == pytest.approx(2.0, rel=1e-6) and exact.abs_rel == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(exact.depth[exact.mask], data["gts"][0][exact.mask], rtol=1e-6)
    noisy = scale_frame(data["gts"][1], data["disps"][1], opts)
    assert noisy.ratio == pytest.approx(2.0, rel=1e-6)
    error = noisy.error_map(data["gts"][1])
    assert np.isnan(error[~noisy.mask]).all() and noisy.mask.sum() < H * W  # Garg crop
    assert np.nanmean(error) == pytest.approx(noisy.abs_rel, rel=1e-12)
    assert noisy.abs_rel == pytest.approx(data["abs_rel"][1], rel=1e-5)
    far = scale_frame(data["gts"][1], np.full((4, 12), 1e-6, np.float32), EvalOptions(scaling="fixed"))
    assert far.depth.max() == 80.0  # clamped to max_depth as in the evaluation


def test_spread_sparse_copies_the_nearest_point():
    values = np.zeros((5, 7))
    valid = np.zeros((5, 7), bool)
    values[2, 1], values[2, 5] = 10.0, 30.0
    valid[2, 1] = valid[2, 5] = True
    filled, mask = spread_sparse(values, valid, radius=1.0)
    assert mask.sum() == 10  # two crosses of 5 pixels
    assert filled[1, 1] == filled[2, 2] == 10.0 and filled[2, 4] == filled[3, 5] == 30.0
    assert set(np.unique(filled[mask])) == {10.0, 30.0}  # copied, never averaged
    filled, mask = spread_sparse(values, np.zeros_like(valid), 2.0)
    assert not mask.any()


def test_depth_scale_is_inverse_depth_in_metres():
    gt = np.zeros((10, 10))
    gt[5:] = np.linspace(6.2, 20.0, 50).reshape(5, 10)  # 2nd percentile 6.48 m
    near, far = depth_range([gt], [gt > 0], 80.0)
    assert (near, far) == (6.0, 80.0)
    norm = depth_norm(near, far)
    assert float(norm(6.0)) == pytest.approx(0.0) and float(norm(80.0)) == pytest.approx(1.0)
    assert float(norm(12.0)) == pytest.approx((1 / 6 - 1 / 12) / (1 / 6 - 1 / 80))
    ticks = depth_ticks(near, far)
    assert ticks[0] == 6.0 and ticks[-1] == 80.0 and ticks == sorted(ticks) and 10.0 in ticks
    assert depth_range([gt], [np.zeros_like(gt, bool)], 80.0) == (1.0, 80.0)


def test_stage_order_and_error_stage():
    assert pipeline_order(["constant", "finetune", "teacher", "finetune_unmasked", "student"]) == [
        "teacher", "student", "finetune", "finetune_unmasked", "constant"]
    assert error_stage(["teacher", "student", "finetune", "finetune_unmasked"]) == "finetune"
    assert error_stage(["teacher", "external"]) == "teacher"
    assert error_stage(["external"]) == "external"


def _text_boxes(fig: plt.Figure) -> list:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text().strip()]
    return [(t, t.get_window_extent(renderer)) for t in texts]


def test_depth_figure_is_legible(tmp_path):
    """One colour bar in metres for every depth panel, one for the error; rows labelled in the
    pipeline's order; no text under 8 pt and no two texts overlapping."""
    data = known_frames(tmp_path)
    opts = EvalOptions()
    stages = {s: [scale_frame(g, d, opts) for g, d in zip(data["gts"], data["disps"], strict=True)]
              for s in ("teacher", "student", "finetune", "finetune_unmasked")}
    images = [np.full((H, W, 3), 90, np.uint8)] * 2
    titles = [f"2011_01_02_drive_0003\nframe {i} (l)" for i in range(2)]
    fig = frames_figure(images, data["gts"], stages, "finetune", titles, "title", opts)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels[:7] == ["input", "ground truth\n(LiDAR)", "teacher", "student", "finetune",
                          "finetune_unmasked", "abs_rel error\n(finetune)"]
    assert labels.count("depth (m)") == 1 and labels.count("abs_rel") == 1
    boxes = _text_boxes(fig)
    assert min(t.get_fontsize() for t, _ in boxes) >= 8
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), (a.get_text(), b.get_text())
    assert fig.get_size_inches()[0] * fig.dpi == 1300
    plt.close(fig)


def test_kitti_depth_figure_and_count_check(tmp_path):
    make_kitti_predictions(tmp_path)
    raw = tmp_path / "resources" / "demo" / "kitti_raw"
    results = tmp_path / "results" / "kitti"
    split = results / "splits" / "eigen" / "test_files.txt"
    disps = {s: results / "pred" / s / "eigen_disps.npy" for s in ("finetune", "teacher", "student")}
    rows = plot_kitti_depth.main(results / "gt" / "eigen.npz", disps, split, raw, "png", EvalOptions(),
                                 tmp_path / "d.png", n_frames=2)
    assert rows == [0, 2]
    h, w = png_size(tmp_path / "d.png")
    assert 1100 < w <= 1300 and h > 400
    np.save(disps["student"], np.zeros((2, 16, 48), np.float32))
    with pytest.raises(InputDataError, match=r"student/eigen_disps.npy.*for the 3 frames"):
        plot_kitti_depth.main(results / "gt" / "eigen.npz", disps, split, raw, "png", EvalOptions(),
                              tmp_path / "e.png", n_frames=2)
    assert not (tmp_path / "e.png").exists()
    write_kitti_gt(results / "gt" / "eigen.npz", [f"{DRIVE} {i:010d} l" for i in range(2)], (40, 120))
    with pytest.raises(InputDataError, match="ground truth of 2 frames that are not the 3 frames"):
        plot_kitti_per_frame.main(results / "gt" / "eigen.npz", {"teacher": disps["teacher"]}, split,
                                  EvalOptions(), tmp_path / "f.png", tmp_path / "f.csv")
    write_kitti_gt(results / "gt" / "eigen.npz", [f"{DRIVE} {i:010d} l" for i in range(1, 4)], (40, 120))
    with pytest.raises(InputDataError, match="ground truth of 3 frames that are not the 3 frames"):
        plot_kitti_per_frame.main(results / "gt" / "eigen.npz", {"teacher": disps["teacher"]}, split,
                                  EvalOptions(), tmp_path / "f.png", tmp_path / "f.csv")
    with pytest.raises(InputDataError, match="external_disparities"):  # another method's file
        load_stage_disparities(disps["student"], "external", 3)
