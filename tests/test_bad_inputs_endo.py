"""Fault injection (issue 14), endoscopy branch and an interrupted training: each case damages a
copy of the small endoscopy demo (tests/conftest.py), or a real-data layout made from it (a frame
folder, a video), and runs the real rules up to the one that reads the damage. Checks:
tests/fault_injection.py; the driving branch and the configuration: tests/test_bad_inputs.py."""

from __future__ import annotations

import os
import shutil
import signal
import time

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from tests.fault_injection import (
    FAIL_TIMES,
    assert_failed,
    case_folder,
    snakemake,
    write_config,
)

FRAMES = "results/endo/seq01/frames"
SFM = "results/endo/seq01/sfm"
FUSED = "results/endo/pointclouds/constant/seq01/fused.ply"  # the constant baseline: no training
REGISTRATION = [f"results/endo/registration/constant/seq01{e}" for e in (".json", ".ply", "_residuals.npy")]
TEACHER = "results/endo/train/teacher"


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory, endo_demo_small):
    """A real-data layout: <root>/seq01/<index:08d>.jpg (the demo video's 12 distorted frames,
    JPEG quality 95) and <root>/camera.yaml."""
    root = tmp_path_factory.mktemp("endo_frames") / "endoscopy"
    (root / "seq01").mkdir(parents=True)
    shutil.copy(endo_demo_small["root"] / "camera.yaml", root)
    video = cv2.VideoCapture(str(endo_demo_small["root"] / "p1" / "seq01.mp4"))
    index = 0
    while (frame := video.read()[1]) is not None:
        cv2.imwrite(str(root / "seq01" / f"{index:08d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        index += 1
    video.release()
    assert index == 12
    return root


def real_layout(tmp_path, source) -> tuple:
    """A run folder with a copy of ``source`` (a real-data endoscopy folder) as endoscopy.root,
    and the config file that says so."""
    root = tmp_path / "endoscopy"
    shutil.copytree(source, root)
    return tmp_path, root, write_config(tmp_path, "real.yaml", {"endoscopy": {"root": str(root)}})


@pytest.mark.timeout(120)
def test_b_truncated_jpeg_in_a_frame_folder(tmp_path, frame_folder):
    """Was accepted: libjpeg only warned, the missing rows turned grey and went on to SfM."""
    folder, root, cfg = real_layout(tmp_path, frame_folder)
    jpeg = root / "seq01" / "00000005.jpg"
    os.truncate(jpeg, jpeg.stat().st_size // 2)
    run = snakemake(folder, FRAMES, cfg)
    assert_failed(run, "b. truncated JPEG in frames", "extract_frames", "logs/extract_frames/seq01.log",
                  [FRAMES], jpeg, "JPEG file is truncated", "no end-of-image marker",
                  "replace or remove the file")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["empty", "cut in half"])
def test_video_that_cannot_be_read(tmp_path, endo_demo_small, damage):
    """A 0-byte video, and the first half of the demo's video (its index, at the end, is lost)."""
    root = tmp_path / "endoscopy"
    root.mkdir()
    shutil.copy(endo_demo_small["root"] / "camera.yaml", root)
    data = (endo_demo_small["root"] / "p1" / "seq01.mp4").read_bytes()
    (root / "seq01.mp4").write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    cfg = write_config(tmp_path, "real.yaml", {"endoscopy": {"root": str(root)}})
    run = snakemake(tmp_path, FRAMES, cfg)
    assert_failed(run, f"video {damage}", "extract_frames", "logs/extract_frames/seq01.log", [FRAMES],
                  root / "seq01.mp4", "cannot be opened as a video", "re-encode it")


@pytest.mark.timeout(180)
def test_sfm_that_registers_too_few_frames(tmp_path, frame_folder):
    """Half of the frames are featureless (a lens covered by fluid): 6 of 12 register."""
    folder, root, cfg = real_layout(tmp_path, frame_folder)
    for index in range(6, 12):
        cv2.imwrite(str(root / "seq01" / f"{index:08d}.jpg"), np.full((480, 640, 3), 128, np.uint8))
    run = snakemake(folder, SFM, cfg)
    assert (folder / FRAMES / "frames.csv").is_file()  # extract_frames itself was fine
    assert_failed(run, "SfM registers 6 of 12", "run_sfm", "logs/run_sfm/seq01.log", [SFM], FRAMES,
                  "SfM registered 6 of 12 frames (< 90%", "lower endoscopy.frames.stride")


@pytest.fixture(scope="module")
def endo_chain(tmp_path_factory, endo_demo_small):
    """A run folder with the small endoscopy demo taken up to the constant baseline's fused cloud
    (extract_frames, run_sfm, prepare_sfm_data, predict_endo_constant, export_point_clouds)."""
    folder = case_folder(tmp_path_factory.mktemp("endo_chain"), endo=endo_demo_small["root"])
    run = snakemake(folder, FUSED, timeout=240)
    assert run.returncode == 0, run.output[-3000:]
    return folder


def ply_header(vertices: int, faces: bool) -> bytes:
    face = "element face 0\nproperty list uchar int vertex_indices\n" if faces else ""
    return (f"ply\nformat binary_little_endian 1.0\nelement vertex {vertices}\nproperty float x\n"
            f"property float y\nproperty float z\n{face}end_header\n").encode()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["no faces", "no points"])
def test_ct_surface_without_faces_or_points(endo_chain, damage):
    """endoscopy.ct_surface is a point cloud (the CT's vertices only), or a mesh without vertices."""
    ct = endo_chain / f"ct_{damage.replace(' ', '_')}.ply"
    if damage == "no faces":
        points = np.random.default_rng(0).uniform(-20, 20, (500, 3)).astype("<f4")
        ct.write_bytes(ply_header(len(points), faces=False) + points.tobytes())
        phrase = "CT surface has 500 points but no faces (triangles)"
    else:
        ct.write_bytes(ply_header(0, faces=True))
        phrase = "CT surface has no points (vertices)"
    cfg = write_config(endo_chain, "ct.yaml", {"endoscopy": {"ct_surface": ct.name}})
    run = snakemake(endo_chain, REGISTRATION[0], cfg)
    assert_failed(run, f"CT {damage}", "register_ct", "logs/register_ct/constant/seq01.log", REGISTRATION,
                  ct.name, phrase, "give endoscopy.ct_surface a triangle mesh")


@pytest.mark.timeout(300)
def test_killed_training_resumes_from_its_checkpoint(tmp_path, endo_chain):
    """kill -9 of the whole run while the teacher trains (12 steps, a checkpoint every 2), then
    --unlock and --rerun-incomplete: the job resumes from the checkpoint, and its model equals,
    bit for bit, a run of the same stage from step 0."""
    folder = tmp_path / "run"
    shutil.copytree(endo_chain, folder)  # with .snakemake: the chain's jobs are done
    cfg = write_config(folder, "steps.yaml", {"endoscopy": {"train": {"teacher": {"length": 12}}}})
    checkpoint = folder / TEACHER / "checkpoint.pt"

    def kill_at_first_checkpoint(proc):
        deadline = time.monotonic() + 150
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job: the process group of the run

    t0 = time.monotonic()
    run = snakemake(folder, f"{TEACHER}/model.pt", cfg, popen_hook=kill_at_first_checkpoint, timeout=200)
    assert run.returncode == -signal.SIGKILL, run.output[-3000:]
    step = torch.load(checkpoint, weights_only=True)["step"]
    assert 2 <= step < 12 and not (folder / TEACHER / "model.pt").exists()
    first = snakemake(folder, f"{TEACHER}/model.pt", cfg)  # what a user sees first: what to do
    assert first.returncode != 0 and "rerun your command with the --rerun-incomplete flag" in first.output
    assert f"Incomplete files:\n{TEACHER}/" in first.output
    assert snakemake(folder, f"{TEACHER}/model.pt", cfg, extra=("--unlock",)).returncode == 0
    run = snakemake(folder, f"{TEACHER}/model.pt", cfg, extra=("--rerun-incomplete",))
    assert run.returncode == 0, run.output[-3000:]
    FAIL_TIMES["kill -9, --rerun-incomplete"] = ("train_teacher", time.monotonic() - t0,
                                                 f"resumed at step {step} of 12")
    log = (folder / "logs" / "train_teacher" / "endo.log").read_text()
    assert f"resuming from {TEACHER}/checkpoint.pt at step {step}" in log
    resumed = torch.load(folder / TEACHER / "model.pt", weights_only=True)["nets"]
    history = pd.read_csv(folder / TEACHER / "history.csv")
    assert list(history.step) == list(range(1, 13))

    run = snakemake(folder, f"{TEACHER}/model.pt", cfg, extra=("--forcerun", "train_teacher"))
    assert run.returncode == 0, run.output[-3000:]
    assert "training again from step 0" in (folder / "logs" / "train_teacher" / "endo.log").read_text()
    fresh = torch.load(folder / TEACHER / "model.pt", weights_only=True)["nets"]
    assert fresh.keys() == resumed.keys()
    for net in fresh:
        assert all(torch.equal(fresh[net][k], resumed[net][k]) for k in fresh[net]), net
    again = pd.read_csv(folder / TEACHER / "history.csv")
    pd.testing.assert_series_equal(again.loss, history.loss)
