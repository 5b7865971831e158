"""Rules kitti_demo_video and predict_images in the workflow: on the demo, `snakemake all` turns the
held-out test drive into a video and writes the fine-tuned model's depth of it (slow: the session's
tiny demo run, tests/conftest.py)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import ROOT

DRIVE = "2011_01_02/2011_01_02_drive_0003_sync"  # the demo's default test drive


def _frame_count(path) -> tuple[int, int]:
    """(the container's frame count, frames decoded) of a video."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open with OpenCV"
    stated, read = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.read()[0]:
        read += 1
    cap.release()
    return stated, read


@pytest.mark.slow
def test_the_demo_predicts_depth_for_its_test_drive_video(tiny_demo_run):
    tiny_demo_run.check()
    folder = tiny_demo_run.folder
    images = sorted((folder / "resources/demo/kitti_raw" / DRIVE / "image_02/data").glob("*.png"))
    assert images
    name = DRIVE.split("/")[1]
    assert _frame_count(folder / "results/kitti/demo_video" / f"{name}.mp4") == (len(images), len(images))
    out = folder / "results/kitti/predict/finetune" / name
    assert _frame_count(out / "depth.mp4") == (len(images), len(images))
    summary = json.loads((out / "summary.json").read_text())
    size = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())["kitti"]["train"]["common"]["size"]
    assert summary["frames"] == len(images) and summary["training_size_hw"] == size
    assert np.load(out / "disps.npy").shape == (len(images), *size)
    # the demo's fine-tune keeps the stereo pair: metric depth, the evaluation's x5.4
    assert summary["units"] == "metres" and summary["scale"] == pytest.approx(5.4)
    for frame in summary["names"]:
        for rel in (f"depth/{frame}.npy", f"depth/{frame}.png", f"color/{frame}.png"):
            assert (out / rel).is_file(), rel
    assert (folder / "logs/predict_images/finetune" / f"{name}.log").is_file()
