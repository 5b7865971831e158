"""Report figures (workflow_scripts/report/, plot_* scripts) on small synthetic inputs with
known values, and the Snakemake report built from them (slow: a DAG run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from plyfile import PlyData, PlyElement

from tests.conftest import ROOT
from workflow_scripts import (
    plot_endo_depth,
    plot_eval_metrics,
    plot_kitti_depth,
    plot_registration_residuals,
    plot_registration_view,
    plot_sfm_summary,
    plot_training_curves,
    sfm_summary_table,
)
from workflow_scripts.report.curves import moving_average, read_history
from workflow_scripts.report.depth import colorize, robust_range, select_frames
from workflow_scripts.report.figure import plt, read_ply
from workflow_scripts.report.registration import crop_mesh, read_residuals, residual_stats
from workflow_scripts.report.sfm import camera_centres, principal_axes
from workflow_scripts.util import InputDataError

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


def test_crop_mesh_keeps_triangles_touching_the_box():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 10, 10], [11, 10, 10], [10, 11, 10]], float)
    tris = np.array([[0, 1, 2], [3, 4, 5], [2, 3, 4]])
    kept = crop_mesh(verts, tris, np.array([-0.5, -0.5, -0.5]), np.array([0.5, 0.5, 0.5]))
    assert kept.tolist() == [[0, 1, 2]]
    kept = crop_mesh(verts, tris, np.array([-1.0] * 3), np.array([2.0] * 3))
    assert kept.tolist() == [[0, 1, 2], [2, 3, 4]]


# ------------------------------------------------------------------ synthetic inputs


def write_mesh_ply(path: Path, verts: np.ndarray, tris: np.ndarray | None, extra: dict | None = None) -> None:
    """Binary PLY like the demo's ct_surface.ply (x, y, z float32 [+ extra], faces int32)."""
    extra = extra or {}
    vdata = np.empty(len(verts), dtype=[(k, "f4") for k in ("x", "y", "z", *extra)])
    for i, k in enumerate("xyz"):
        vdata[k] = verts[:, i]
    for k, v in extra.items():
        vdata[k] = v
    elements = [PlyElement.describe(vdata, "vertex")]
    if tris is not None:
        fdata = np.empty(len(tris), dtype=[("vertex_indices", "i4", (3,))])
        fdata["vertex_indices"] = tris
        elements.append(PlyElement.describe(fdata, "face"))
    PlyData(elements, text=False, byte_order="<").write(str(path))


def cylinder(radius: float = 5.0, length: float = 40.0, n_around: int = 48, n_along: int = 40):
    """Triangle mesh of an open cylinder along z (mm): vertices (N, 3), triangles (M, 3)."""
    a = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    z = np.linspace(0, length, n_along)
    aa, zz = np.meshgrid(a, z)
    verts = np.stack([radius * np.cos(aa), radius * np.sin(aa), zz], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_along - 1), np.arange(n_around), indexing="ij")
    v00, v01 = i * n_around + j, i * n_around + (j + 1) % n_around
    v10, v11 = v00 + n_around, v01 + n_around
    tris = np.concatenate([np.stack([v00, v01, v11], -1).reshape(-1, 3),
                           np.stack([v00, v11, v10], -1).reshape(-1, 3)])
    return verts, tris


def test_read_ply_round_trip_with_faces_and_properties(tmp_path):
    verts, tris = cylinder(n_around=8, n_along=3)
    write_mesh_ply(tmp_path / "ct.ply", verts, tris, {"nx": np.ones(len(verts))})
    v, t, extra = read_ply(tmp_path / "ct.ply", need_faces=True)
    np.testing.assert_allclose(v, verts.astype(np.float32))
    assert t.tolist() == tris.tolist() and list(extra) == ["nx"]
    write_mesh_ply(tmp_path / "cloud.ply", verts, None)
    assert read_ply(tmp_path / "cloud.ply")[1] is None
    with pytest.raises(InputDataError, match="no faces"):
        read_ply(tmp_path / "cloud.ply", need_faces=True)
    with pytest.raises(InputDataError, match="file not found"):
        read_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_text("not a ply")
    with pytest.raises(InputDataError, match="cannot read as PLY"):
        read_ply(tmp_path / "junk.ply")


def test_registration_figures_on_a_cylinder(tmp_path):
    """Points on a 5 mm cylinder pushed out by known distances: the stats log the exact
    residuals and both figures are written."""
    verts, tris = cylinder()
    write_mesh_ply(tmp_path / "ct.ply", verts, tris)
    rng = np.random.default_rng(0)
    a, z = rng.uniform(0, 2 * np.pi, 400), rng.uniform(10, 30, 400)
    offset = rng.uniform(0.0, 1.0, 400)
    cloud = np.stack([(5 + offset) * np.cos(a), (5 + offset) * np.sin(a), z], -1)
    write_mesh_ply(tmp_path / "seqA.ply", cloud, None)
    np.save(tmp_path / "seqA_residuals.npy", offset.astype(np.float32))
    plot_registration_view.main(tmp_path / "seqA.ply", tmp_path / "seqA_residuals.npy", tmp_path / "ct.ply",
                                "teacher", "seqA", tmp_path / "view.png")
    h, w = png_size(tmp_path / "view.png")
    assert w > 600 and h > 250
    np.save(tmp_path / "half.npy", (offset / 2).astype(np.float32))
    stats = plot_registration_residuals.main([tmp_path / "seqA_residuals.npy", tmp_path / "half.npy"],
                                             ["teacher", "student"], "seqA", tmp_path / "hist.png", bins=20)
    assert stats["teacher"]["median"] == pytest.approx(np.median(offset), rel=1e-6)
    assert stats["student"]["rmse"] == pytest.approx(stats["teacher"]["rmse"] / 2, rel=1e-6)
    png_size(tmp_path / "hist.png")
    np.save(tmp_path / "short.npy", offset[:10])
    with pytest.raises(InputDataError, match="10 residuals for a cloud of 400 points"):
        plot_registration_view.main(tmp_path / "seqA.ply", tmp_path / "short.npy", tmp_path / "ct.ply",
                                    "teacher", "seqA", tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def make_endo_sequence(root: Path, n_frames: int = 5, full_hw: tuple[int, int] = (64, 96),
                       sfm_arrays: dict | None = None) -> dict:
    """Frames <index:08d>.jpg (a colour ramp, so that a wrong crop shows), sfm_data.npz with
    downsampling 2 and a crop (+ ``sfm_arrays``), and a depth.npz at the cropped size with
    depth = 10 + row (mm)."""
    frames = root / "frames"
    frames.mkdir(parents=True)
    h, w = full_hw
    yy, xx = np.mgrid[0:h, 0:w]
    indexes = np.arange(n_frames) * 2 + 10
    for k, idx in enumerate(indexes):
        image = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 40 * k)], -1)
        image = image.astype(np.uint8)
        cv2.imwrite(str(frames / f"{idx:08d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    crop = np.array([4, 28, 8, 40], np.int32)  # rows 4..28, cols 8..40 of the 32 x 48 downsampled frame
    np.savez(root / "sfm_data.npz", **(sfm_arrays or {}), downsampling=np.float64(2.0), crop=crop)
    ch, cw = crop[1] - crop[0], crop[3] - crop[2]
    depth = np.broadcast_to(10.0 + np.arange(ch, dtype=np.float32)[:, None], (n_frames, ch, cw)).copy()
    mask = np.zeros((ch, cw), np.uint8)
    mask[2:-2, 2:-2] = 255
    np.savez(root / "depth.npz", depth=depth, frame_indexes=indexes, K=np.eye(3), mask=mask)
    return {"frames": frames, "indexes": indexes, "crop": crop}


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


def make_sfm_inputs(root: Path, seq: str = "seqA", n_views: int = 6) -> dict:
    """sfm_data.npz/.json and sfm/summary.json of a camera moving along z through points on a
    tube (SfM units), as prepare_sfm_data and run_sfm write them."""
    seq_dir = root / "results" / "endo" / seq
    (seq_dir / "sfm").mkdir(parents=True)
    cam_from_world = np.repeat(np.eye(4)[None], n_views, 0)
    cam_from_world[:, 2, 3] = -np.arange(n_views) * 0.5  # centres at z = 0, 0.5, ...
    a = np.linspace(0, 2 * np.pi, 200)
    points = np.stack([np.cos(a), np.sin(a), np.linspace(0, 3, 200)], -1)
    clean = np.ones(200, bool)
    clean[:3] = False
    sparse_view = np.repeat(np.arange(n_views), np.arange(1, n_views + 1)).astype(np.int32)
    arrays = {"cam_from_world": cam_from_world, "points": points, "clean": clean,
              "view_indexes": np.arange(n_views) * 2, "sparse_view": sparse_view}
    np.savez(seq_dir / "sfm_data.npz", **arrays)
    (seq_dir / "sfm_data.json").write_text(json.dumps(
        {"views": n_views, "frames": 2 * n_views, "points": 200, "clean_points": 197,
         "sparse_points_per_view": len(sparse_view) / n_views, "global_scale": 4.0}))
    (seq_dir / "sfm" / "summary.json").write_text(json.dumps(
        {"frames": 2 * n_views, "registered": n_views, "registered_fraction": 0.5, "points3D": 200,
         "mean_reprojection_error_px": 0.6, "mean_track_length": 5.5}))
    return {"dir": seq_dir, "arrays": arrays}


def test_sfm_summary_figure_and_table(tmp_path):
    rows = []
    for seq in ("seqA", "seqB"):
        d = make_sfm_inputs(tmp_path, seq)["dir"]
        row = plot_sfm_summary.main(seq, d / "sfm_data.npz", d / "sfm_data.json", d / "sfm" / "summary.json",
                                    tmp_path / f"{seq}.png", tmp_path / f"{seq}.json")
        png_size(tmp_path / f"{seq}.png")
        rows.append(tmp_path / f"{seq}.json")
    assert row["registered"] == 6 and row["clean_points"] == 197 and row["mean_track_length"] == 5.5
    table = sfm_summary_table.main(rows, tmp_path / "sfm_summary.csv")
    assert table.sequence.tolist() == ["seqA", "seqB"]
    assert pd.read_csv(tmp_path / "sfm_summary.csv").sparse_points_per_view.tolist() == [3.5, 3.5]
    # data in the reference's format have no run_sfm summary: those numbers are NaN, not errors
    row = plot_sfm_summary.main("seqA", d / "sfm_data.npz", d / "sfm_data.json", None, tmp_path / "r.png",
                                tmp_path / "r.json")
    assert row["registered"] == 6 and np.isnan(row["mean_reprojection_error_px"])


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


KITTI_DRIVE = "2011_01_02/2011_01_02_drive_0003_sync"  # the demo's test drive


def make_kitti_predictions(root: Path, n: int = 3, stages=("teacher", "student", "finetune")) -> None:
    """KITTI-layout frames of the demo test drive, the eigen test list and, per stage,
    disparities (N, 16, 48) that grow towards the bottom of the image (near road)."""
    data = root / "resources" / "demo" / "kitti_raw" / KITTI_DRIVE / "image_02" / "data"
    data.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(data / f"{i:010d}.png"), np.full((40, 120, 3), 60 * i, np.uint8))
    split = root / "results" / "kitti" / "splits" / "eigen" / "test_files.txt"
    split.parent.mkdir(parents=True)
    split.write_text("".join(f"{KITTI_DRIVE} {i} l\n" for i in range(n)))
    for k, stage in enumerate(stages):
        disp = np.broadcast_to(np.linspace(0.01, 0.3, 16, dtype=np.float32)[:, None] * (k + 1), (n, 16, 48))
        out = root / "results" / "kitti" / "pred" / stage / "eigen_disps.npy"
        out.parent.mkdir(parents=True)
        np.save(out, disp.copy())


def test_kitti_depth_figure_and_count_check(tmp_path):
    make_kitti_predictions(tmp_path)
    raw = tmp_path / "resources" / "demo" / "kitti_raw"
    split = tmp_path / "results" / "kitti" / "splits" / "eigen" / "test_files.txt"
    pred = tmp_path / "results" / "kitti" / "pred" / "teacher" / "eigen_disps.npy"
    assert plot_kitti_depth.main(pred, split, raw, "png", "teacher", tmp_path / "d.png", n_frames=2) == [0, 2]
    png_size(tmp_path / "d.png")
    np.save(pred, np.zeros((2, 16, 48), np.float32))
    with pytest.raises(InputDataError, match="for 3 frames"):
        plot_kitti_depth.main(pred, split, raw, "png", "teacher", tmp_path / "e.png", n_frames=2)


def make_report_inputs(root: Path) -> list[str]:
    """Every input of the report rules for one endoscopy sequence 'seqA' (what training,
    prediction, evaluation and registration would write); returns the endoscopy figures to
    request explicitly (their config sections do not exist yet)."""
    make_kitti_predictions(root)
    stages = ("teacher", "student", "finetune")
    for k, stage in enumerate(stages):
        train = root / "results" / "kitti" / "train" / stage
        train.mkdir(parents=True)
        pd.DataFrame({"step": [1, 2, 3], "loss": [1.0, 0.8, 0.7], "lr": 1e-4, "seconds": [1, 2, 3],
                      "reprojection": [0.5, 0.4, 0.35]}).to_csv(train / "history.csv", index=False)
    (root / "results" / "kitti" / "eval").mkdir(parents=True)
    for k, stage in enumerate((*stages, "constant")):
        rows = [{"stage": stage, "scaling": s, "n_frames": 3, "abs_rel": 0.2 + 0.01 * k, "sq_rel": 1.0,
                 "rmse": 5.0, "rmse_log": 0.3, "log10": 0.1, "a1": 0.7, "a2": 0.9, "a3": 0.95}
                for s in ("median", "stereo")]
        pd.DataFrame(rows).to_csv(root / "results" / "kitti" / "eval" / f"{stage}.csv", index=False)
    sfm = make_sfm_inputs(root, "seqA")
    seq_dir = sfm["dir"]
    make_endo_sequence(seq_dir, sfm_arrays=sfm["arrays"])  # frames/, sfm_data.npz (+ crop), depth.npz
    pred = root / "results" / "endo" / "pred" / "teacher" / "seqA"
    pred.mkdir(parents=True)
    (seq_dir / "depth.npz").rename(pred / "depth.npz")
    ct = root / "resources" / "demo" / "endoscopy"
    ct.mkdir(parents=True)
    verts, tris = cylinder()
    write_mesh_ply(ct / "ct_surface.ply", verts, tris)
    a = np.linspace(0, 2 * np.pi, 300)
    for k, stage in enumerate(stages):
        reg = root / "results" / "endo" / "registration" / stage
        reg.mkdir(parents=True)
        offset = np.abs(np.sin(7 * a)) / (k + 1)
        cloud = np.stack([(5 + offset) * np.cos(a), (5 + offset) * np.sin(a), 10 + a], -1)
        write_mesh_ply(reg / "seqA.ply", cloud, None)
        np.save(reg / "seqA_residuals.npy", offset)
    pd.DataFrame({"stage": stages, "sequence": "seqA", "rmse_mm": [0.7, 0.5, 0.3]}).to_csv(
        root / "results" / "endo_eval.csv", index=False)
    return ["results/endo/report/depth/teacher/seqA.png",
            "results/endo/report/registration/seqA_residuals.png",
            "results/endo/report/registration/teacher/seqA_on_ct.png",
            "results/endo/report/eval_metrics.png"]


REPORT_RULES = ["plot_kitti_depth", "plot_training_curves", "plot_kitti_eval", "kitti_eval_table",
                "plot_sfm_summary", "sfm_summary_table", "plot_endo_depth", "plot_registration_residuals",
                "plot_registration_view", "plot_endo_eval", "report_figures"]


@pytest.mark.slow
def test_snakemake_report_shows_the_figures(tmp_path):
    """The report rules in the DAG on prepared inputs (only they may run), then
    `snakemake --report`: the HTML embeds every figure and both tables; in Chromium it shows them."""
    endo_targets = make_report_inputs(tmp_path)
    sequence = {"name": "seqA", "frames": 10, "start": 6.0, "step": 0.3}
    config = {"demo": {"endoscopy": {"sequences": [sequence]}}}
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
    figures = [f"results/kitti/report/depth/{s}.png" for s in ("teacher", "student", "finetune")]
    figures += ["results/kitti/report/training_curves.png", "results/kitti/report/eval_metrics.png",
                "results/endo/report/sfm/seqA.png", *endo_targets]
    tables = ["results/kitti_eval.csv", "results/endo_eval.csv", "results/endo/report/sfm_summary.csv"]
    for name in [*figures, *tables]:
        assert f'"{name}"' in html, name
    assert html.count('"data:image/png;') >= len(figures)  # embedded, not linked
    for name in ("Driving (KITTI)", "Endoscopy", "Registration to CT", "Evaluation", "Training"):
        assert name in html

    from tests.report_browser import chromium, screenshot

    if chromium() is None:
        pytest.skip("chromium not installed: the HTML was checked, not its rendering")
    shot = screenshot(report, tmp_path / "shot.png", "registration/seqA_residuals.png", "Endoscopy")
    home = screenshot(report, tmp_path / "home.png")
    shown, front = cv2.imread(str(shot)), cv2.imread(str(home))
    assert shown.shape == front.shape == (1000, 1400, 3)
    # the figure (white page, coloured curves) replaces the rule graph on the right
    assert np.abs(shown.astype(int) - front.astype(int)).mean() > 2.0
