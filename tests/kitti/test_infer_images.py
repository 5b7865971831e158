"""Depth for any images or video with a driving-branch model (workflow_scripts/kitti/infer.py, rule
predict_images): the outputs' layout and formats, the 16-bit PNG's scale, parity of disps.npy with
the test split's prediction (predict_depth), the depth conversion of the evaluation, videos, the
units, the command line and bad inputs."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from models.model_file import save_model
from models.networks.spec import NetworkSpec
from tests.tiny_kitti import DATE, DRIVE, write_teacher, write_tiny_raw
from workflow_scripts import predict_images as cli
from workflow_scripts.kitti import raw
from workflow_scripts.kitti.infer import (
    PNG_SCALE,
    KittiPredictOptions,
    depth_scale,
    iter_frames,
    predict_images,
)
from workflow_scripts.kitti.predict import predict_depth
from workflow_scripts.util import InputDataError

N_IMAGES, HW = 3, (64, 128)  # write_teacher's training size


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The tiny KITTI drive (96x320 frames; split = its first 3 frames), an untrained teacher
    model.pt, and a folder with copies of those 3 frames."""
    tmp = tmp_path_factory.mktemp("infer_images")
    tiny = write_tiny_raw(tmp, range(N_IMAGES))
    model = tmp / "model.pt"
    write_teacher(model, seed=0)
    drive = raw.drive_dir(tiny["root"], DATE, DRIVE)
    images = tmp / "images"
    images.mkdir()
    for i in range(N_IMAGES):
        shutil.copy(raw.image_path(drive, 2, i), images / f"frame_{i:02d}.png")
    torch.set_num_threads(1)
    return {**tiny, "model": model, "images": images, "drive": drive}


@pytest.fixture(scope="module")
def folder_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder_run") / "out"
    return out, predict_images(data["model"], data["images"], out)


def test_a_folder_gives_one_depth_png_and_colour_file_per_image(folder_run):
    out, summary = folder_run
    names = [f"frame_{i:02d}" for i in range(N_IMAGES)]
    assert summary["names"] == names and summary["frames"] == N_IMAGES
    for sub, suffix in (("depth", ".npy"), ("depth", ".png"), ("color", ".png")):
        assert sorted(p.name for p in (out / sub).glob(f"*{suffix}")) == [n + suffix for n in names]
    depth = np.load(out / "depth" / "frame_00.npy")
    colour = cv2.imread(str(out / "color" / "frame_00.png"))
    assert depth.dtype == np.float32 and depth.shape == (96, 320) and np.all(depth > 0)
    assert colour.shape == (96, 320, 3)
    assert json.loads((out / "summary.json").read_text())["frames"] == N_IMAGES
    assert not list(out.parent.glob(".*.tmp")), "the atomic folder's temporary is gone"


def test_the_16_bit_png_round_trips_within_its_step(folder_run):
    out, summary = folder_run
    assert summary["png"]["png_scale"] == PNG_SCALE == 256.0
    for name in summary["names"]:
        png = cv2.imread(str(out / "depth" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        depth = np.load(out / "depth" / f"{name}.npy")
        assert png.dtype == np.uint16 and png.shape == depth.shape
        kept = png < 65535  # saturated pixels are counted in summary.json
        assert np.abs(png[kept] / PNG_SCALE - depth[kept]).max() <= 0.5 / PNG_SCALE + 1e-5
        assert summary["png"]["saturated_pixels"] >= int(np.count_nonzero(~kept))


def test_disps_match_the_test_split_prediction_and_depth_is_the_evaluations(data, folder_run, tmp_path):
    out, summary = folder_run
    disps = np.load(out / "disps.npy")
    assert disps.dtype == np.float32 and disps.shape == (N_IMAGES, *HW)
    reference = predict_depth(data["model"], data["split"], data["root"], data["root"], "png",
                              tmp_path / "eigen_disps.npy", post_process=False, threads=1)
    np.testing.assert_allclose(disps, reference, rtol=1e-6, atol=1e-7)
    # relative (untrained, no stereo option): depth = 1 / the disparity resized bilinearly
    assert summary["units"] == "relative" and summary["scale"] == 1.0 and not summary["metric"]
    full = cv2.resize(disps[1], (320, 96), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    np.testing.assert_allclose(np.load(out / "depth" / "frame_01.npy"), 1.0 / full, rtol=1e-6)


def test_a_video_gives_an_mp4_with_every_frame(data, tmp_path):
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 96))
    for i in range(5):
        writer.write(cv2.imread(str(raw.image_path(data["drive"], 2, i))))
    writer.release()
    summary = predict_images(data["model"], clip, tmp_path / "out", KittiPredictOptions(colormap="turbo"))
    assert summary["kind"] == "video" and summary["names"] == [f"{i:06d}" for i in range(5)]
    cap = cv2.VideoCapture(str(tmp_path / "out" / "depth.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    frames = []
    while (frame := cap.read()[1]) is not None:
        frames.append(frame)
    cap.release()
    assert len(frames) == 5 and frames[0].shape == (96, 320, 3)
    assert np.load(tmp_path / "out" / "disps.npy").shape == (5, *HW)
    assert summary["video"]["fps"] == pytest.approx(10.0)


def test_stride_and_max_frames_select_in_name_order(data):
    frames, fps = iter_frames(data["images"], stride=2)
    assert [name for name, _ in frames] == ["frame_00", "frame_02"] and fps == 5.0
    frames, _ = iter_frames(data["images"], max_frames=1)
    assert [name for name, _ in frames] == ["frame_00"]


def test_units_are_metres_only_with_a_stereo_scale():
    assert depth_scale({"stage": "finetune", "options": {"stereo": True}, "stereo_baseline": 0.1},
                       "auto")[:2] == (pytest.approx(5.4), "metres")
    assert depth_scale({"stage": "finetune", "options": {"stereo": False}}, "auto")[:2] == (1.0, "relative")
    student = {"stage": "student", "options": {}, "stereo_baseline": 0.2}
    assert depth_scale(student, "auto", teacher_stereo=True)[:2] == (pytest.approx(2.7), "metres")
    assert depth_scale(student, "auto")[1] == "relative"
    assert depth_scale(student, "stereo")[1] == "metres" and depth_scale(student, "relative")[0] == 1.0


def test_the_command_line_on_one_image(data, tmp_path, capsys):
    image = data["images"] / "frame_01.png"
    summary = cli.main(["--model", str(data["model"]), "--input", str(image), "--out", str(tmp_path / "o"),
                        "--scaling", "stereo"])
    out = tmp_path / "o"
    for rel in ("depth/frame_01.npy", "depth/frame_01.png", "color/frame_01.png", "depth.mp4", "disps.npy",
                "summary.json"):
        assert (out / rel).is_file(), rel
    assert np.load(out / "disps.npy").shape == (1, *HW)
    assert summary["units"] == "metres" and summary["scale"] == pytest.approx(5.4)
    assert "1 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--help"])


def test_bad_inputs_name_the_file(data, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    with pytest.raises(InputDataError, match=r"notes\.mp4: .*(video|frame).*\. "):
        predict_images(data["model"], fake, tmp_path / "fake_out")
    assert not (tmp_path / "fake_out").exists() and not list(tmp_path.glob(".fake_out.*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputDataError, match=r"empty: holds no \.png/\.jpg/\.jpeg image\. give"):
        predict_images(data["model"], empty, tmp_path / "empty_out")
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(data["images"] / "frame_00.png", broken / "a.png")
    (broken / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(InputDataError, match=r"b\.jpg: JPEG file is truncated"):
        predict_images(data["model"], broken, tmp_path / "broken_out")
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("a.png", "a.jpg"):
        shutil.copy(data["images"] / "frame_00.png", twice / name)
    with pytest.raises(InputDataError, match="several images named a"):
        iter_frames(twice)
    with pytest.raises(InputDataError, match="input not found"):
        iter_frames(tmp_path / "nowhere.mp4")


def test_a_model_of_the_other_branch_is_refused(data, tmp_path):
    spec = NetworkSpec()
    save_model(nn.ModuleDict({"depth": spec.build()}), tmp_path / "endo.pt", branch="endo", stage="teacher",
               network=spec, size=HW, steps=0)
    with pytest.raises(InputDataError, match=r"endo\.pt: is a model of the 'endo' branch"):
        predict_images(tmp_path / "endo.pt", data["images"], tmp_path / "out")
    with pytest.raises(InputDataError, match="model not found"):
        predict_images(tmp_path / "missing.pt", data["images"], tmp_path / "out")
