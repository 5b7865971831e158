"""run_sfm on a rendered sequence with known trajectory and depth; failure on too few frames."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pycolmap
import pytest

from workflow_scripts.endo.camera import load_camera
from workflow_scripts.endo.scene import opencv_K, scene_from_colmap
from workflow_scripts.endo.sfm import SfMOptions, colmap_params, largest_model, run_sfm_on_frames
from workflow_scripts.endo.sfm_data import SfMDataOptions, prepare
from workflow_scripts.endo.trajectory import camera_centres, trajectory_error
from workflow_scripts.util import InputDataError
from workflow_scripts.util.options import load_options


def gt_centres(run, frame_indexes) -> np.ndarray:
    row = {int(f): i for i, f in enumerate(run["gt"]["frame"])}
    return camera_centres(run["gt"]["cam_from_world"][[row[int(i)] for i in frame_indexes]])


def test_every_frame_registers_and_the_trajectory_matches(endo_sfm_run):
    s = endo_sfm_run["summary"]
    assert s["registered"] == s["frames"] == 24
    assert s["points3D"] > 1000 and s["mean_reprojection_error_px"] < 1.5 and s["mean_track_length"] > 3
    scene = scene_from_colmap(endo_sfm_run["sfm"] / "model", endo_sfm_run["frames"])
    err = trajectory_error(camera_centres(scene.cam_from_world), gt_centres(endo_sfm_run, scene.view_indexes))
    print(
        f"\nSfM demo 24 frames: {endo_sfm_run['sfm_seconds']:.1f} s, camera-centre RMSE {err['rmse']:.4f} mm "
        f"= {err['rmse_pct']:.3f} % of {err['length']:.1f} mm, max {err['max_pct']:.3f} %"
    )
    assert err["rmse_pct"] < 1.0 and err["max_pct"] < 2.0


def test_model_is_binary_colmap_with_the_known_pinhole_camera(endo_sfm_run):
    model = endo_sfm_run["sfm"] / "model"
    assert {"cameras.bin", "images.bin", "points3D.bin"} <= {p.name for p in model.iterdir()}
    rec = pycolmap.Reconstruction(str(model))
    assert rec.num_cameras() == 1
    cam = next(iter(rec.cameras.values()))
    K = load_camera(endo_sfm_run["root"] / "camera.yaml").K
    assert cam.model == pycolmap.CameraModelId.PINHOLE
    assert np.allclose(cam.params, colmap_params(K)) and np.allclose(opencv_K(cam), K)  # not refined
    summary = json.loads((endo_sfm_run["sfm"] / "summary.json").read_text())
    assert summary["registered"] == 24 and summary["options"]["seed"] == 2026
    assert set(summary["times"]) == {"extract_s", "match_s", "map_s"}


def test_sfm_points_have_the_true_depth(endo_sfm_run, default_config):
    """Sparse samples of prepare_sfm_data, scaled by the trajectory's similarity, match the
    renderer's depth maps: the structure and the pose convention are right end to end."""
    run = endo_sfm_run
    scene = scene_from_colmap(run["sfm"] / "model", run["frames"])
    err = trajectory_error(camera_centres(scene.cam_from_world), gt_centres(run, scene.view_indexes))
    data = prepare(scene, load_options(SfMDataOptions, default_config["endoscopy"]["sfm_data"]))
    assert data["clean"].mean() > 0.95 and data["input_size"].tolist() == [192, 256]
    camera = load_camera(run["root"] / "camera.yaml")
    rel = []
    for v in (0, 11, 23):
        pid = data["sparse_point"][data["sparse_view"] == v]
        pid = pid[scene.visibility[pid, v] > 0]  # observed in v (the window also lends occluded points)
        Xc = scene.points[pid] @ scene.cam_from_world[v, :3, :3].T + scene.cam_from_world[v, :3, 3]
        px, _ = cv2.projectPoints(Xc, np.zeros(3), np.zeros(3), camera.K, camera.dist)
        depth = (
            cv2.imread(
                str(run["root"] / "gt" / "seqsfm" / "depth" / f"{scene.view_indexes[v]:08d}.png"),
                cv2.IMREAD_UNCHANGED,
            ).astype(np.float32)
            / 500.0
        )
        px = px.reshape(1, -1, 2).astype(np.float32)  # bilinear: the walls are steep in depth
        gt = cv2.remap(depth, px[..., 0], px[..., 1], cv2.INTER_LINEAR).ravel()
        rel.append((err["scale"] * Xc[:, 2] - gt)[gt > 0] / gt[gt > 0])
    rel = np.concatenate(rel)
    print(
        f"\nsparse depth vs rendered depth: median |rel. error| {np.median(np.abs(rel)):.4f}, median signed "
        f"{np.median(rel):+.4f} over {rel.size} samples"
    )
    # SfM triangulation noise (short baselines in forward motion) is ~1 %; no bias
    assert rel.size > 500 and np.median(np.abs(rel)) < 0.02 and abs(np.median(rel)) < 0.005
    assert np.mean(np.abs(rel) < 0.05) > 0.85  # the rest: fold edges, far points


def test_too_few_registered_frames_fail_and_write_nothing(endo_sfm_run, tmp_path):
    """8 good frames + 2 blank ones: 8/10 < 0.9 registered."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("mask.png", "camera.json"):
        shutil.copy(endo_sfm_run["frames"] / name, frames / name)
    rows = ["index,file,time_s"]
    for i in range(10):
        if i < 8:
            shutil.copy(endo_sfm_run["frames"] / f"{i:08d}.jpg", frames / f"{i:08d}.jpg")
        else:
            cv2.imwrite(str(frames / f"{i:08d}.jpg"), np.full((480, 640, 3), 90, np.uint8))
        rows.append(f"{i},{i:08d}.jpg,{i / 30:.6f}")
    (frames / "frames.csv").write_text("\n".join(rows) + "\n")
    opts = load_options(SfMOptions, endo_sfm_run["config"]["sfm"], seed=1)
    out = tmp_path / "sfm"
    with pytest.raises(InputDataError, match="registered 8 of 10 frames") as err:
        run_sfm_on_frames(frames, out, opts)
    assert err.value.path == frames
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_largest_model_is_chosen():
    models = {}
    for k, n in enumerate((3, 6, 4)):
        opts = pycolmap.SyntheticDatasetOptions(num_rigs=1, num_frames_per_rig=n, num_points3D=50)
        models[k] = pycolmap.synthesize_dataset(opts)
    assert largest_model(models) is models[1] and largest_model({}) is None


def test_rule_script_sends_colmap_output_to_its_log_and_python_stderr_to_snakemake(tmp_path):
    """run_sfm's redirect_stderr: COLMAP's C++ logging (file descriptor 2) goes to the COLMAP
    log, while Python's stderr (a failed job's one readable line) still reaches the terminal."""
    code = ("import os, sys\nfrom workflow_scripts.run_sfm import redirect_stderr\n"
            f"redirect_stderr({str(tmp_path / 'colmap.log')!r})\n"
            "os.write(2, b'I1202 glog line\\n')\nsys.stderr.write('data/x.jpg: bad. fix it\\n')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    assert run.stderr == "data/x.jpg: bad. fix it\n"
    assert (tmp_path / "colmap.log").read_text() == "I1202 glog line\n"
