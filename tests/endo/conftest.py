"""Fixtures of the endoscopy data-preparation tests: a reduced demo sequence run once through
extract_frames and run_sfm with the default config (except the sequence itself)."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest

from workflow_scripts.demo import endo_demo
from workflow_scripts.endo.camera import load_camera
from workflow_scripts.endo.extract import ExtractOptions, extract_frames
from workflow_scripts.endo.sfm import SfMOptions, run_sfm_on_frames
from workflow_scripts.util.options import load_options


@pytest.fixture(scope="session")
def endo_sfm_run(tmp_path_factory, default_config) -> dict:
    """24 frames, 0.6 mm apart (the motion between kept frames of the demo at stride 2),
    through extract_frames (stride 1) and run_sfm with the config's SfM options.

    Returns {'root', 'frames', 'sfm', 'gt' (poses.npz dict), 'summary', 'sfm_seconds', 'config'}.
    """
    section = copy.deepcopy(default_config["demo"]["endoscopy"])
    section["sequences"] = [{"name": "seqsfm", "frames": 24, "start": 6.0, "step": 0.6}]
    cfg = load_options(endo_demo.EndoDemoConfig, section)
    root = tmp_path_factory.mktemp("endo_sfm") / "endoscopy"
    endo_demo.generate(root, cfg, seed=default_config["seed"], workers=2)
    endo = copy.deepcopy(default_config["endoscopy"])
    endo["frames"]["stride"] = 1
    out = root.parent / "results"
    extract_frames(
        root / "p1" / "seqsfm.mp4",
        load_camera(root / "camera.yaml"),
        out / "frames",
        load_options(ExtractOptions, endo["frames"]),
    )
    start = time.perf_counter()
    summary = run_sfm_on_frames(
        out / "frames", out / "sfm", load_options(SfMOptions, endo["sfm"], seed=default_config["seed"])
    )
    seconds = time.perf_counter() - start
    with np.load(root / "gt" / "seqsfm" / "poses.npz") as f:
        gt = {k: f[k] for k in f.files}
    return {
        "root": root,
        "frames": out / "frames",
        "sfm": out / "sfm",
        "gt": gt,
        "summary": summary,
        "sfm_seconds": seconds,
        "config": endo,
    }
