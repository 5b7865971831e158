"""A tiny KITTI-raw layout and an untrained teacher model for the training tests (one helper for
tests/kitti/test_kitti_training.py, tests/training/test_divergence.py, tests/test_recipes.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from models.model_file import save_model
from models.networks.spec import NetworkSpec
from workflow_scripts.demo.kitti_demo import demo_calibration
from workflow_scripts.kitti import calib as kc
from workflow_scripts.kitti import raw

DATE, DRIVE, FRAMES = "2011_01_01", "0001", 6


def write_tiny_raw(tmp_path: Path, split_frames: range = range(FRAMES)) -> dict:
    """One drive under ``tmp_path/kitti_raw``: the demo's calibration at 96x320 and ``FRAMES``
    smooth random LEFT frames (no right camera), and a split file of ``split_frames``.
    Returns {'root', 'split', 'tmp'}."""
    root = tmp_path / "kitti_raw"
    for name, entries in demo_calibration((96, 320), 721.5, 0.54).items():
        kc.write_calib_file(root / DATE / name, entries)
    drive = raw.drive_dir(root, DATE, DRIVE)
    (drive / "image_02" / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(FRAMES):
        img = cv2.GaussianBlur(rng.integers(40, 220, (96, 320, 3), dtype=np.uint8), (0, 0), 2)
        cv2.imwrite(str(raw.image_path(drive, 2, i)), img)
    split = tmp_path / "train_files.txt"
    split.write_text("".join(f"{DATE}/{drive.name} {i} l\n" for i in split_frames))
    return {"root": root, "split": split, "tmp": tmp_path}


def write_teacher(path: Path, seed: int) -> None:
    """An untrained KITTI teacher model.pt at ``path``: its weights differ with ``seed``."""
    torch.manual_seed(seed)
    save_model(nn.ModuleDict({"depth": NetworkSpec().build()}), path, branch="kitti", stage="teacher",
               network=NetworkSpec(), size=(64, 128), steps=1, min_depth=0.1, max_depth=100.0,
               depth_kind="disp", stereo_baseline=0.1, options={})
