"""Endoscopy figures of the report (workflow_scripts/report/{registration,registration_view,
endo_depth,sfm}.py and their plot_* rule scripts) on synthetic inputs with known geometry: the
cloud under the true pose lands on the CT, one residual colour scale for every figure, sparse
points at their pixels in the map's colours, the SfM figure's frame convention, no text on text."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from tests.report_inputs import cylinder, make_endo_sequence, make_sfm_inputs, write_mesh_ply
from workflow_scripts import (
    join_tables,
    plot_endo_depth,
    plot_registration_residuals,
    plot_registration_view,
    plot_sfm_summary,
)
from workflow_scripts.report.depth import colorize
from workflow_scripts.report.endo_depth import SparsePoints, endo_depth_figure, sparse_points_of
from workflow_scripts.report.figure import plt
from workflow_scripts.report.registration import residual_figure
from workflow_scripts.report.registration_view import (
    cloud_on_ct_figure,
    other_poses,
    projection_image,
    registration_verdict,
    sample_surface,
    short_flag,
    view_axes,
)
from workflow_scripts.report.sfm import read_sfm_inputs, sfm_figure, summary_row
from workflow_scripts.util import InputDataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(height, width) of a PNG file, checking that it is one."""
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    return cv2.imread(str(path)).shape[:2]


def overlapping_texts(fig: plt.Figure) -> list[tuple[str, str]]:
    """Pairs of visible texts (titles, axis labels, tick labels in view, figure titles) of
    different owners whose boxes intersect, and texts that reach into another axes' plotting
    area ("axesN"), as the figure is drawn; asserts that every such text is >= 8 pt."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [("figure", t) for t in [fig._suptitle, *fig.texts] if t is not None]
    areas = []
    for k, ax in enumerate(fig.axes):
        texts += [(f"axes{k}", t) for t in (ax.title, ax._left_title, ax._right_title)]
        if not ax.axison:  # axis("off"): only its title shows
            continue
        areas.append((f"axes{k}", ax.get_window_extent(renderer)))
        for name, axis, limits in (("x", ax.xaxis, ax.get_xlim()), ("y", ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(limits)
            drawn = [t for v, t in zip(axis.get_ticklocs(), axis.get_ticklabels(), strict=True)
                     if lo - 1e-9 * (hi - lo) <= v <= hi + 1e-9 * (hi - lo)]  # ticks in view are drawn
            texts += [(f"axes{k}.{name}", t) for t in [axis.label, *drawn]]
    shown = [(owner, t, t.get_window_extent(renderer)) for owner, t in texts
             if t.get_visible() and t.get_text()]
    for _, t, _ in shown:
        assert t.get_fontsize() >= 8, (t.get_text(), t.get_fontsize())
    clashes = [(a.get_text(), b.get_text()) for (oa, a, ba), (ob, b, bb) in combinations(shown, 2)
               if oa != ob and ba.overlaps(bb)]
    clashes += [(t.get_text(), area) for owner, t, box in shown for area, abox in areas
                if owner.split(".")[0] != area and box.overlaps(abox)]
    return clashes


def turned_over(T: np.ndarray) -> np.ndarray:
    """The similarity T turned 180 degrees about its own x axis (a wrong, 'reversed' pose)."""
    return T @ np.diag([1.0, -1.0, -1.0, 1.0])


def true_similarity() -> np.ndarray:
    """SfM -> CT of the synthetic case: scale 5, a rotation, a shift along the CT cylinder (mm)."""
    T = np.eye(4)
    T[:3, :3] = 5.0 * Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    T[:3, 3] = [0.0, 0.0, 20.0]
    return T


def sfm_cloud_on_cylinder(T: np.ndarray, n: int = 600, seed: int = 0) -> np.ndarray:
    """Points (n, 3) in SfM units that ``T`` puts on the 5 mm cylinder along z (z 12-28 mm)."""
    rng = np.random.default_rng(seed)
    a, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(12, 28, n)
    ct = np.stack([5 * np.cos(a), 5 * np.sin(a), z], -1)
    return (ct - T[:3, 3]) @ np.linalg.inv(T[:3, :3]).T


# ------------------------------------------------------------------ registration view


def test_view_axes_put_the_longest_extent_horizontal():
    assert view_axes(np.array([25.0, 24.0, 88.0])) == [(2, 0, 1), (2, 1, 0), (0, 1, 2)]
    assert view_axes(np.array([10.0, 30.0, 20.0])) == [(1, 2, 0), (1, 0, 2), (2, 0, 1)]


def test_surface_samples_lie_on_the_mesh_and_project_to_their_pixels():
    verts = np.array([[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0]], float)  # a 2 x 1 mm square, z = 0
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    points = sample_surface(verts, tris, 20000, seed=1)
    assert np.all(points[:, 2] == 0) and points[:, :2].min() >= 0
    assert points[:, 0].max() <= 2 and points[:, 1].max() <= 1
    assert np.mean(points[:, 0] < 1) == pytest.approx(0.5, abs=0.02)  # uniform over the area
    image = projection_image(np.array([[0.25, 0.75, 0.0], [1.75, 0.25, 0.0]]), 0, 1, np.zeros(3),
                             np.array([2.0, 1.0, 0.0]), 0.5)
    assert image.shape == (2, 4) and image.sum() == 2
    assert image[1, 0] == 1 and image[0, 3] == 1  # row 0 at the bottom (y = 0)
    with pytest.raises(ValueError, match="no triangle of positive area"):
        sample_surface(verts, np.array([[0, 0, 1]]), 10)


def test_the_true_cloud_lands_on_the_ct_and_the_runner_up_where_its_pose_puts_it():
    """A registration turned over (wrong, ambiguous): the figure's true cloud is the SfM cloud
    under truth.ct_from_sfm, on the 5 mm cylinder; the runner-up cloud is under its own pose."""
    T_true = true_similarity()
    sfm = sfm_cloud_on_cylinder(T_true)
    T_reg, T_run = turned_over(T_true), T_true.copy()
    T_run[:3, 3] += [0.0, 0.0, 3.0]
    registered = sfm @ T_reg[:3, :3].T + T_reg[:3, 3]
    registration = {"ct_from_sfm": T_reg.tolist(), "ambiguous": True, "runner_up_ratio": 1.004,
                    "runner_up": {"ct_from_sfm": T_run.tolist()},
                    "truth": {"rotation_deg": 180.0, "scale_ratio": 1.0, "camera_rms_mm": 9.5,
                              "ct_from_sfm": T_true.tolist()}}
    true, runner = other_poses(registered, registration)
    np.testing.assert_allclose(np.hypot(true.points[:, 0], true.points[:, 1]), 5.0, atol=1e-9)
    assert true.points[:, 2].min() >= 12 - 1e-9 and true.points[:, 2].max() <= 28 + 1e-9
    np.testing.assert_allclose(runner.points, sfm @ T_run[:3, :3].T + T_run[:3, 3], atol=1e-9)
    assert "true pose" in true.title and "runner-up" in runner.title and "1.00x" in runner.title
    # without truth.ct_from_sfm (real data, or a JSON of before) and confident: no other rows
    assert other_poses(registered, {**registration, "truth": {"rotation_deg": 1.0}, "ambiguous": False}) == []


def test_verdict_says_ambiguous_and_how_far_from_the_truth():
    truth = {"rotation_deg": 171.2, "scale_ratio": 0.73, "camera_rms_mm": 14.8}
    text, alarming = registration_verdict({"ambiguous": True, "runner_up_ratio": 1.0049, "truth": truth})
    assert alarming and "AMBIGUOUS (runner-up 1.00x the best score)" in text
    assert "registered 171° from the true pose" in text and "14.8 mm" in text
    assert short_flag({"ambiguous": True, "runner_up_ratio": 1.0049, "truth": truth}) == \
        "AMBIGUOUS (runner-up 1.00x); 171° from the true pose"
    text, alarming = registration_verdict({"ambiguous": False, "runner_up_ratio": 3.2,
                                           "truth": {**truth, "rotation_deg": 0.4}})
    assert not alarming and text.startswith("confident (runner-up 3.20x")
    assert registration_verdict({"ambiguous": False, "runner_up_ratio": None}) == (
        "confident (no distinct runner-up)", False)
    assert short_flag({"ambiguous": False, "runner_up_ratio": 3.2, "truth": {"rotation_deg": 0.4}}) == ""


def _residual_scatter(fig: plt.Figure):
    """The scatter coloured by residuals (the one with an array of values)."""
    hits = [c for ax in fig.axes for c in ax.collections
            if c.get_array() is not None and c.get_cmap().name == "plasma"]
    assert hits
    return hits[0]


def test_one_residual_colour_scale_for_every_figure_and_no_text_on_text():
    verts, tris = cylinder()
    T_true = true_similarity()
    cloud = sfm_cloud_on_cylinder(T_true) @ T_true[:3, :3].T + T_true[:3, 3]
    limits = []
    for residuals in (np.linspace(0, 1, len(cloud)), np.linspace(0, 20, len(cloud))):
        registration = {"ct_from_sfm": turned_over(T_true).tolist(), "ambiguous": True,
                        "runner_up_ratio": 1.01,
                        "runner_up": {"ct_from_sfm": T_true.tolist()},
                        "truth": {"rotation_deg": 180.0, "scale_ratio": 1.0, "camera_rms_mm": 9.0,
                                  "ct_from_sfm": T_true.tolist()}}
        fig = cloud_on_ct_figure(verts, tris, cloud, residuals, "seqA, teacher", 5.0,
                                 other_poses(cloud, registration), registration_verdict(registration),
                                 surface_samples=20000)
        scatter = _residual_scatter(fig)
        limits.append(scatter.get_clim())
        assert overlapping_texts(fig) == []
        assert fig._suptitle.get_color() == "tab:red" and "AMBIGUOUS" in fig._suptitle.get_text()
        assert 1200 <= fig.get_size_inches()[0] * fig.dpi <= 1400
        plt.close(fig)
    assert limits == [(0.0, 5.0), (0.0, 5.0)]
    # the cloud's own axes: the whole CT (0-40 mm along z) is in view, not only the cloud's 12-28 mm
    fig = cloud_on_ct_figure(verts, tris, cloud, None, "t", 5.0, surface_samples=5000)
    xlim = fig.axes[0].get_xlim()
    assert xlim[0] < 0 and xlim[1] > 40 and fig.axes[0].get_xlabel() == "z (mm)"
    plt.close(fig)
    with pytest.raises(ValueError, match="residual_max_mm must be > 0"):
        cloud_on_ct_figure(verts, tris, cloud, None, "t", 0.0)


def test_registration_figures_on_a_cylinder(tmp_path):
    """Points on a 5 mm cylinder pushed out by known distances: the stats log the exact residuals,
    the JSONs' flags reach the histogram, both figures are written, bad input names its file."""
    verts, tris = cylinder()
    write_mesh_ply(tmp_path / "ct.ply", verts, tris)
    rng = np.random.default_rng(0)
    a, z = rng.uniform(0, 2 * np.pi, 400), rng.uniform(10, 30, 400)
    offset = rng.uniform(0.0, 1.0, 400)
    cloud = np.stack([(5 + offset) * np.cos(a), (5 + offset) * np.sin(a), z], -1)
    write_mesh_ply(tmp_path / "seqA.ply", cloud, None)
    np.save(tmp_path / "seqA_residuals.npy", offset.astype(np.float32))
    ambiguous = {"ct_from_sfm": np.eye(4).tolist(), "ambiguous": True, "runner_up_ratio": 1.02,
                 "runner_up": {"ct_from_sfm": turned_over(np.eye(4)).tolist()},
                 "truth": {"rotation_deg": 171.0, "scale_ratio": 0.9, "camera_rms_mm": 30.0,
                           "ct_from_sfm": turned_over(np.eye(4)).tolist()}}
    (tmp_path / "a.json").write_text(json.dumps(ambiguous))
    (tmp_path / "b.json").write_text(json.dumps({"ct_from_sfm": np.eye(4).tolist(), "ambiguous": False,
                                                 "runner_up_ratio": 4.0}))
    inputs = (tmp_path / "seqA.ply", tmp_path / "seqA_residuals.npy", tmp_path / "ct.ply", "teacher", "seqA")
    out = plot_registration_view.main(*inputs, tmp_path / "view.png", 0, tmp_path / "a.json", 5.0)
    assert out["alarming"] and out["rows"] == 3 and "171° from the true pose" in out["verdict"]
    h, w = png_size(tmp_path / "view.png")
    assert 1200 <= w <= 1400 and h > 400
    out = plot_registration_view.main(*inputs, tmp_path / "view1.png", 0, tmp_path / "b.json")
    assert not out["alarming"] and out["rows"] == 1
    np.save(tmp_path / "half.npy", (offset / 2).astype(np.float32))
    stats = plot_registration_residuals.main([tmp_path / "seqA_residuals.npy", tmp_path / "half.npy"],
                                             ["teacher", "student"], "seqA", tmp_path / "hist.png", bins=20,
                                             registration_paths=[tmp_path / "a.json", tmp_path / "b.json"])
    assert stats["teacher"]["median"] == pytest.approx(np.median(offset), rel=1e-6)
    assert stats["student"]["rmse"] == pytest.approx(stats["teacher"]["rmse"] / 2, rel=1e-6)
    assert stats["teacher"]["flag"].startswith("AMBIGUOUS") and stats["student"]["flag"] == ""
    png_size(tmp_path / "hist.png")
    np.save(tmp_path / "short.npy", offset[:10])
    with pytest.raises(InputDataError, match="10 residuals for a cloud of 400 points"):
        plot_registration_view.main(tmp_path / "seqA.ply", tmp_path / "short.npy", tmp_path / "ct.ply",
                                    "teacher", "seqA", tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputDataError, match="broken.json"):
        plot_registration_view.main(*inputs, tmp_path / "bad.png", 0, tmp_path / "broken.json")


def test_residual_histogram_flags_and_text():
    rng = np.random.default_rng(2)
    stages = ("teacher", "student", "finetune", "constant")
    residuals = {s: rng.uniform(0, k + 1, 500) for k, s in enumerate(stages)}
    flags = {"teacher": "AMBIGUOUS (runner-up 1.01x); 171° from the true pose", "student": ""}
    fig = residual_figure(residuals, "seqA: registered clouds to the CT surface", bins=20, flags=flags)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "171° from the true pose" in labels[0] and "\n" not in labels[1]
    assert fig._suptitle.get_color() == "tab:red"
    assert "1 of 4 registrations flagged" in fig._suptitle.get_text()
    assert overlapping_texts(fig) == []
    plt.close(fig)


# ------------------------------------------------------------------ depth maps with sparse points


def test_sparse_points_sit_at_their_pixels_in_the_maps_colours():
    h, w = 24, 32
    maps = [np.broadcast_to(10.0 + np.arange(h, dtype=np.float64)[:, None], (h, w)).copy() for _ in range(2)]
    maps[1] *= 2.0  # a second frame twice as deep: one shared scale, so its colours differ
    valid = np.ones((h, w), bool)
    xy = np.array([[3, 4], [20, 16]])
    sparse = [SparsePoints(xy, np.array([14.0, 26.0]), 2),
              SparsePoints(np.zeros((0, 2), int), np.zeros(0), 0)]
    images = [np.zeros((h, w, 3), np.uint8)] * 2
    fig = endo_depth_figure(images, maps, valid, sparse, ["frame 10", "frame 12"], "seqA", "mm",
                            percentiles=(0.0, 100.0))
    bottom = fig.axes[2]  # axes: row 0 = frames, row 1 = maps (new_figure order)
    points = [c for c in bottom.collections if len(c.get_offsets())]
    np.testing.assert_array_equal(points[0].get_offsets(), xy)
    shown = bottom.images[0].get_array()
    lo, hi = 10.0, 2 * (10.0 + h - 1)  # the shared range of both maps
    expected = colorize(maps[0], lo, hi, "magma_r")
    np.testing.assert_allclose(shown, expected)
    for (x, y), fill in zip(xy, points[0].get_facecolors(), strict=True):  # z = the map at its pixel
        np.testing.assert_allclose(fill[:3], shown[y, x], atol=1 / 255)
    assert "2 of 2 sparse points" in bottom.get_xlabel() and "median 1.00" in bottom.get_xlabel()
    assert "no sparse points" in fig.axes[3].get_xlabel()
    bar = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"][0]
    assert bar.get_ylim() == pytest.approx((lo, hi))
    assert overlapping_texts(fig) == []
    plt.close(fig)


def test_sparse_points_of_a_frame_by_its_video_index():
    sfm = {"view_indexes": np.array([10, 12, 14]), "sparse_view": np.array([0, 1, 1, 1, 2], np.int32),
           "sparse_xy": np.arange(10).reshape(5, 2), "sparse_z": np.arange(5.0)}
    got = sparse_points_of(sfm, 12)
    assert got.total == 3 and got.z.tolist() == [1.0, 2.0, 3.0]
    assert got.xy.tolist() == [[2, 3], [4, 5], [6, 7]]
    assert sparse_points_of(sfm, 12, max_points=2).z.shape == (2,)
    assert sparse_points_of(sfm, 11).total == 0  # not a registered view


def test_endo_depth_shows_the_network_crop_of_each_frame(tmp_path):
    seq = make_endo_sequence(tmp_path)
    first = seq["frames"] / f"{seq['indexes'][0]:08d}.jpg"
    decoded = cv2.imread(str(first))
    small = cv2.resize(decoded, (0, 0), fx=0.5, fy=0.5)
    c = seq["crop"]
    expected = small[c[0]:c[1], c[2]:c[3], ::-1]  # RGB
    shown = plot_endo_depth.network_frame(first, (24, 32), 2.0, c)
    np.testing.assert_array_equal(shown, expected)
    assert shown[0, 0, 2] > 30  # blue = x ramp: the crop starts at column 8 (16 at full size), not 0
    rows = plot_endo_depth.main(tmp_path / "depth.npz", seq["frames"], tmp_path / "sfm_data.npz", "teacher",
                                "seqA", tmp_path / "depth.png", n_frames=3, unit="mm")
    assert rows == [0, 2, 4]
    png_size(tmp_path / "depth.png")
    np.savez(tmp_path / "old.npz", downsampling=np.float64(2.0), crop=seq["crop"])
    with pytest.raises(InputDataError, match=r"old.npz: keys \['view_indexes'"):
        plot_endo_depth.main(tmp_path / "depth.npz", seq["frames"], tmp_path / "old.npz", "teacher", "seqA",
                             tmp_path / "x.png", 3, "mm")


def test_endo_depth_rejects_inconsistent_predictions(tmp_path):
    seq = make_endo_sequence(tmp_path)
    np.savez(tmp_path / "bad.npz", depth=np.zeros((5, 24, 32), np.float32), frame_indexes=seq["indexes"][:3],
             mask=np.ones((24, 32)))
    with pytest.raises(InputDataError, match="do not agree"):
        plot_endo_depth.main(tmp_path / "bad.npz", seq["frames"], tmp_path / "sfm_data.npz", "teacher",
                             "seqA", tmp_path / "x.png", 3, "mm")
    np.savez(tmp_path / "nokeys.npz", depth=np.zeros((5, 24, 32), np.float32))
    with pytest.raises(InputDataError, match=r"keys \['frame_indexes', 'mask'\] missing"):
        plot_endo_depth.read_depth_npz(tmp_path / "nokeys.npz")


# ------------------------------------------------------------------ SfM summary


def test_sfm_figure_counts_and_places_frames_by_video_index(tmp_path):
    """12 sampled frames (video frames 0-22, every 2nd), 6 registered (0-10): the title's count,
    the range it names, the bars' positions and the marks of the unregistered frames agree."""
    d = make_sfm_inputs(tmp_path)["dir"]
    with np.load(d / "sfm_data.npz") as npz:
        arrays = dict(npz)
    np.savez(d / "sfm_data.npz", **arrays, frame_indexes=np.arange(12) * 2)
    arrays, info, sfm = read_sfm_inputs(d / "sfm_data.npz", d / "sfm_data.json", d / "sfm" / "summary.json")
    fig = sfm_figure("seqA", arrays, summary_row("seqA", info, sfm))
    title = fig._suptitle.get_text()
    assert "6/12 sampled frames registered (video frames 0-22 in steps of 2)" in title
    bars = fig.axes[2]
    assert [p.get_x() + p.get_width() / 2 for p in bars.patches] == pytest.approx([0, 2, 4, 6, 8, 10])
    assert bars.lines[0].get_xdata().tolist() == [12, 14, 16, 18, 20, 22]  # not registered
    assert bars.get_xlabel() == "video frame index"
    assert overlapping_texts(fig) == []
    plt.close(fig)


def test_sfm_summary_figure_and_table(tmp_path):
    rows = []
    for seq in ("seqA", "seqB"):
        d = make_sfm_inputs(tmp_path, seq)["dir"]
        row = plot_sfm_summary.main(seq, d / "sfm_data.npz", d / "sfm_data.json", d / "sfm" / "summary.json",
                                    tmp_path / f"{seq}.png", tmp_path / f"{seq}.json")
        png_size(tmp_path / f"{seq}.png")
        rows.append(tmp_path / f"{seq}.json")
    assert row["registered"] == 6 and row["clean_points"] == 197 and row["mean_track_length"] == 5.5
    table = join_tables.join_tables(rows, tmp_path / "sfm_summary.csv")
    assert table.sequence.tolist() == ["seqA", "seqB"]
    assert pd.read_csv(tmp_path / "sfm_summary.csv").sparse_points_per_view.tolist() == [3.5, 3.5]
    # data in the reference's format have no run_sfm summary: those numbers are NaN, not errors
    row = plot_sfm_summary.main("seqA", d / "sfm_data.npz", d / "sfm_data.json", None, tmp_path / "r.png",
                                tmp_path / "r.json")
    assert row["registered"] == 6 and np.isnan(row["mean_reprojection_error_px"])
