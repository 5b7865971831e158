"""Synthetic inputs of the report rules (tests/test_report.py): KITTI-layout frames and
disparities, endoscopy frames / sfm_data / depth predictions, a cylinder CT with registered
clouds, training histories and evaluation tables, with known values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from plyfile import PlyData, PlyElement

from workflow_scripts.kitti.gt_export import GtSet, save_gt


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


def make_endo_sequence(root: Path, n_frames: int = 5, full_hw: tuple[int, int] = (64, 96),
                       sfm_arrays: dict | None = None) -> dict:
    """Frames <index:08d>.jpg (a colour ramp, so that a wrong crop shows), sfm_data.npz with
    downsampling 2 and a crop, every frame a registered view with 4 sparse points (pixel
    (x, y) = (3 + 5j, 4 + 4j), z = 10 + y, on the depth) (``sfm_arrays`` replace these), and a
    depth.npz at the cropped size with depth = 10 + row (mm)."""
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
    j = np.tile(np.arange(4), n_frames)
    sparse = {"view_indexes": indexes, "sparse_view": np.repeat(np.arange(n_frames), 4).astype(np.int32),
              "sparse_xy": np.stack([3 + 5 * j, 4 + 4 * j], -1).astype(np.int32),
              "sparse_z": (14.0 + 4 * j).astype(np.float32)}
    np.savez(root / "sfm_data.npz", **(sparse | (sfm_arrays or {})), downsampling=np.float64(2.0), crop=crop)
    ch, cw = crop[1] - crop[0], crop[3] - crop[2]
    depth = np.broadcast_to(10.0 + np.arange(ch, dtype=np.float32)[:, None], (n_frames, ch, cw)).copy()
    mask = np.zeros((ch, cw), np.uint8)
    mask[2:-2, 2:-2] = 255
    np.savez(root / "depth.npz", depth=depth, frame_indexes=indexes, K=np.eye(3), mask=mask)
    return {"frames": frames, "indexes": indexes, "crop": crop}


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
              "view_indexes": np.arange(n_views) * 2, "sparse_view": sparse_view,
              "sparse_xy": np.stack([np.arange(len(sparse_view)) % 32, np.arange(len(sparse_view)) % 24], -1),
              "sparse_z": 10.0 + np.arange(len(sparse_view)) % 24}
    np.savez(seq_dir / "sfm_data.npz", **arrays)
    (seq_dir / "sfm_data.json").write_text(json.dumps(
        {"views": n_views, "frames": 2 * n_views, "points": 200, "clean_points": 197,
         "sparse_points_per_view": len(sparse_view) / n_views, "global_scale": 4.0}))
    (seq_dir / "sfm" / "summary.json").write_text(json.dumps(
        {"frames": 2 * n_views, "registered": n_views, "registered_fraction": 0.5, "points3D": 200,
         "mean_reprojection_error_px": 0.6, "mean_track_length": 5.5}))
    return {"dir": seq_dir, "arrays": arrays}


KITTI_DRIVE = "2011_01_02/2011_01_02_drive_0003_sync"  # the demo's test drive


def write_kitti_gt(path: Path, lines: list[str], hw: tuple[int, int],
                   maps: list[np.ndarray] | None = None) -> None:
    """Ground truth in export_gt_depth's format for split ``lines``: ``maps`` (H, W) in metres
    (0 = none), by default LiDAR-like scan lines (every 3rd row, every 2nd column) of depth
    5 m at the bottom row + 1.5 m per row upwards."""
    h = hw[0]
    if maps is None:
        dense = np.zeros(hw, np.float32)
        dense[h - 1::-3, ::2] = (5.0 + 1.5 * (h - 1 - np.arange(h)))[h - 1::-3, None]
        maps = [dense] * len(lines)
    index = [np.flatnonzero(m).astype(np.int32) for m in maps]
    depth = np.concatenate([m.ravel()[i] for m, i in zip(maps, index, strict=True)]).astype(np.float32)
    save_gt(path, GtSet(files=list(lines), shapes=np.array([m.shape for m in maps], np.int32).reshape(-1, 2),
                        offsets=np.r_[0, np.cumsum([len(i) for i in index])].astype(np.int64),
                        index=np.concatenate(index), depth=depth,
                        meta={"source": "velodyne", "depth_kind": "velodyne", "duplicates": "reference"}))


def make_kitti_predictions(root: Path, n: int = 3,
                           stages=("teacher", "student", "finetune", "finetune_unmasked")) -> None:
    """KITTI-layout frames of the demo test drive, the eigen test list, per stage disparities
    (N, 16, 48) that grow towards the bottom of the image (near road), its ground truth
    (:func:`write_kitti_gt`), the test frames' labels (a car in each) and the fine-tune's segmentation."""
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
    labels = np.zeros((40, 120), np.uint8)  # road (trainId 0) with a car (13)
    labels[10:30, 50:80] = 13
    gt = root / "results" / "kitti" / "gt"
    gt.mkdir(parents=True, exist_ok=True)
    np.savez(gt / "eigen_labels.npz", **{f"l{i:05d}": labels for i in range(n)})
    write_kitti_gt(gt / "eigen.npz", [f"{KITTI_DRIVE} {i:010d} l" for i in range(n)], (40, 120))
    seg = np.zeros((n, 16, 48), np.uint8)
    seg[:, 4:12, 20:32] = 13
    np.save(root / "results" / "kitti" / "pred" / "finetune" / "eigen_seg.npy", seg)


def make_report_inputs(root: Path) -> list[str]:
    """Every input of the report rules for one endoscopy sequence 'seqA' (what training,
    prediction, evaluation and registration would write); returns some endoscopy figures
    (report_figures asks for them all)."""
    make_kitti_predictions(root)
    stages = ("teacher", "student", "finetune")
    for branch, stage in ((b, st) for b in ("kitti", "endo") for st in stages):
        train = root / "results" / branch / "train" / stage
        train.mkdir(parents=True)
        pd.DataFrame({"step": [1, 2, 3], "loss": [1.0, 0.8, 0.7], "lr": 1e-4, "seconds": [1, 2, 3],
                      "reprojection": [0.5, 0.4, 0.35]}).to_csv(train / "history.csv", index=False)
    (root / "results" / "kitti" / "eval").mkdir(parents=True)
    for k, stage in enumerate((*stages, "finetune_unmasked", "constant")):
        rows = [{"stage": stage, "scaling": s, "n_frames": 3, "abs_rel": 0.2 + 0.01 * k, "sq_rel": 1.0,
                 "rmse": 5.0, "rmse_log": 0.3, "log10": 0.1, "a1": 0.7, "a2": 0.9, "a3": 0.95}
                for s in ("median", "stereo")]
        pd.DataFrame(rows).to_csv(root / "results" / "kitti" / "eval" / f"{stage}.csv", index=False)
    sfm = make_sfm_inputs(root, "seqA")
    seq_dir = sfm["dir"]
    make_endo_sequence(seq_dir, sfm_arrays=sfm["arrays"])  # frames/, sfm_data.npz (+ crop), depth.npz
    for stage in stages:
        pred = root / "results" / "endo" / "pred" / stage / "seqA"
        pred.mkdir(parents=True)
        shutil.copy(seq_dir / "depth.npz", pred / "depth.npz")
    ct = root / "resources" / "demo" / "endoscopy" / "p1"  # the demo's patient p1 (seqA's)
    ct.mkdir(parents=True)
    verts, tris = cylinder()
    write_mesh_ply(ct / "ct_surface.ply", verts, tris)
    a = np.linspace(0, 2 * np.pi, 300)
    for k, stage in enumerate((*stages, "constant")):
        reg = root / "results" / "endo" / "registration" / stage
        reg.mkdir(parents=True)
        offset = np.abs(np.sin(7 * a)) / (k + 1)
        cloud = np.stack([(5 + offset) * np.cos(a), (5 + offset) * np.sin(a), 10 + a], -1)
        write_mesh_ply(reg / "seqA.ply", cloud, None)
        np.save(reg / "seqA_residuals.npy", offset)
        # the first stage's registration is ambiguous: its runner-up is the pose turned over
        flip = np.diag([1.0, -1.0, -1.0, 1.0])
        flip[2, 3] = 2 * 10 + np.pi
        registration = {"ct_from_sfm": np.eye(4).tolist(), "ambiguous": k == 0, "runner_up_ratio": 1.1 + k,
                        "runner_up": {"ct_from_sfm": flip.tolist()}}
        (reg / "seqA.json").write_text(json.dumps(registration))
    names = ("residual_mean_mm", "residual_median_mm", "residual_rms_mm", "residual_p95_mm",
             "runner_up_ratio", "abs_rel", "delta1")
    metrics = {m: [0.7, 0.5, 0.3, 1.2] for m in names}
    ambiguous = [True, False, False, False]
    table = pd.DataFrame({"stage": (*stages, "constant"), "sequence": "seqA", "patient": "p1",
                          "split": "train", "ambiguous": ambiguous, **metrics})
    table.to_csv(root / "results" / "endo_eval.csv", index=False)
    return ["results/endo/report/depth/teacher/seqA.png",
            "results/endo/report/registration/seqA_residuals.png",
            "results/endo/report/registration/teacher/seqA_on_ct.png",
            "results/endo/report/eval_metrics.png"]


def make_kitti_extra_tables(root: Path) -> None:
    """results/kitti_seg_eval.csv and results/kitti_pose_eval.csv with a few of their writers'
    columns (kitti_seg_eval_table, evaluate_pose), for the report's HTML tables."""
    pd.DataFrame({"stage": ["finetune", "majority"], "miou": [0.41, 0.05], "pixel_accuracy": [0.8, 0.5],
                  "n_classes": [5, 5], "iou_road": [0.9, 0.5], "iou_car": [0.5, 0.0]}
                 ).to_csv(root / "results" / "kitti_seg_eval.csv", index=False)
    pd.DataFrame({"stage": ["finetune", "identity"], "sequence": "00", "protocol": "monodepth2",
                  "n_frames": 24, "n_snippets": 23, "ate_mean": [0.696, 0.943], "ate_std": [0.093, 0.126],
                  "re_mean": [0.0265, 0.0051], "re_std": [0.005, 0.0019], "scale_median": [10.8, 0.0]}
                 ).to_csv(root / "results" / "kitti_pose_eval.csv", index=False)
