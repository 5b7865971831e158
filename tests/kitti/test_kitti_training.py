"""Driving-branch training stages (workflow_scripts/training/kitti.py): a student checkpoint
belongs to the teacher it learnt from. Runs on a tiny KITTI-raw layout (one drive, 6 frames)."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from models.training import kitti_objectives as ko
from models.training.engine import load_checkpoint
from tests.tiny_kitti import DATE, DRIVE, write_teacher, write_tiny_raw
from workflow_scripts.kitti import raw
from workflow_scripts.training import kitti
from workflow_scripts.training.options import KittiCommon, KittiStudent
from workflow_scripts.training.stage import StageInputs

COMMON = KittiCommon(size=(64, 64), batch_size=1, workers=0, unit="steps", checkpoint_every=2)


@pytest.fixture
def tiny_raw(tmp_path) -> dict:
    """KITTI-raw layout: the demo's calibration at 96x320, smooth random left frames, a split."""
    return write_tiny_raw(tmp_path)


_teacher = write_teacher


def _killed_after(calls: int):
    """``StudentObjective.__call__`` that raises on call ``calls + 1`` (a job killed then)."""
    real, count = ko.StudentObjective.__call__, [0]

    def call(self, batch, nets):
        count[0] += 1
        if count[0] > calls:
            raise RuntimeError("killed")
        return real(self, batch, nets)

    return call


def test_a_new_teacher_restarts_an_interrupted_student(tiny_raw, monkeypatch, caplog):
    """An interrupted student resumes with the same teacher; after a new teacher it trains from
    step 0 again, to exactly the weights of a fresh student of the new teacher."""
    tmp = tiny_raw["tmp"]
    teacher = tmp / "teacher" / "model.pt"
    teacher.parent.mkdir()
    section = KittiStudent(length=4, lr_step=0)
    inputs = StageInputs(
        previous=teacher, split=tiny_raw["split"], raw_root=tiny_raw["root"], image_root=tiny_raw["root"]
    )

    def run_student(out):
        return kitti.run("student", COMMON, section, inputs, out / "student" / "model.pt", seed=3, threads=1)

    _teacher(teacher, seed=1)
    monkeypatch.setattr(ko.StudentObjective, "__call__", _killed_after(2))  # killed in step 2
    with pytest.raises(RuntimeError, match="killed"):
        run_student(tmp / "c")
    assert load_checkpoint(tmp / "c" / "student" / "checkpoint.pt")["step"] == 2
    # the same teacher: the student resumes from its checkpoint (and is killed in step 3)
    monkeypatch.setattr(ko.StudentObjective, "__call__", _killed_after(1))
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError, match="killed"):
        run_student(tmp / "c")
    assert "resuming from" in caplog.text and "at step 2" in caplog.text
    monkeypatch.undo()
    _teacher(teacher, seed=2)  # a new teacher, written over the first
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_student(tmp / "c")
    assert "resuming from" not in caplog.text
    run_student(tmp / "d")  # a fresh student of the new teacher
    restarted = torch.load(tmp / "c" / "student" / "model.pt", weights_only=True)["nets"]["depth"]
    fresh = torch.load(tmp / "d" / "student" / "model.pt", weights_only=True)["nets"]["depth"]
    assert all(torch.equal(restarted[k], fresh[k]) for k in fresh)


def test_a_validated_stage_keeps_its_best_step_as_model_pt(tiny_raw, caplog):
    """With a val list whose frames have ground truth, every step is validated (history.csv's
    val_* columns); model.pt holds the best step's weights (its metric recomputed from the file
    matches the logged one), last.pt the last step's; the log has a constant depth's score on
    the same frames."""
    import pandas as pd

    from models.model_file import load_model
    from workflow_scripts.kitti import gt_depth as gd
    from workflow_scripts.training.kitti_validation import load_val_set, validate_depth

    tmp, root = tiny_raw["tmp"], tiny_raw["root"]
    drive = raw.drive_dir(root, DATE, DRIVE)
    yy = np.linspace(0, 1, 96)[:, None] * np.ones((1, 320))
    for i in (1, 4):  # a ground plane: nearer towards the bottom rows
        png = gd.groundtruth_png_path(drive, i)
        png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(png), np.round(256 * (40.0 - 35.0 * yy)).astype(np.uint16))
    val = tmp / "val_files.txt"
    val.write_text(f"{DATE}/{drive.name} 1 l\n{DATE}/{drive.name} 4 l\n")
    teacher = tmp / "teacher" / "model.pt"
    teacher.parent.mkdir()
    _teacher(teacher, seed=1)
    common = KittiCommon(size=(64, 64), batch_size=1, workers=0, unit="steps", checkpoint_every=2,
                         val_every=1)
    inputs = StageInputs(previous=teacher, split=tiny_raw["split"], val_split=val, raw_root=root,
                         image_root=root)
    out = tmp / "student" / "model.pt"
    section = KittiStudent(length=6, lr_step=0, lr=1e-3)
    with caplog.at_level(logging.INFO):
        info = kitti.run("student", common, section, inputs, out, seed=3, threads=1)
    hist = pd.read_csv(out.parent / "history.csv")
    assert list(hist["step"]) == list(range(1, 7)) and hist["val_abs_rel"].notna().all()
    best = int(hist.loc[hist["val_abs_rel"].idxmin(), "step"])
    assert info["best"]["step"] == best and (out.parent / "last.pt").is_file()
    val_set = load_val_set(val, root, root, "png", (64, 64), 10)
    for path, step in ((out, best), (out.parent / "last.pt", 6)):
        net, meta = load_model(path)
        score = validate_depth(nn.ModuleDict({"depth": net}), val_set, 0.1, 100.0)["abs_rel"]
        assert score == pytest.approx(hist.loc[hist["step"] == step, "val_abs_rel"].item(), rel=1e-5)
    assert torch.load(out, weights_only=True)["meta"]["best"]["step"] == best
    # the constant depth, scaled to the median of the ground truth in the Garg crop (rows
    # 0.408-0.992, columns 0.036-0.964 of 96 x 320): the mean of |median - gt| / gt there
    gt = (np.round(256 * (40.0 - 35.0 * yy)) / 256.0)[int(0.40810811 * 96):int(0.99189189 * 96),
                                                       int(0.03594771 * 320):int(0.96405229 * 320)]
    constant = float(np.mean(np.abs(np.median(gt) - gt) / gt))
    assert f"a constant depth scores abs_rel {constant:.3f}" in caplog.text


def test_a_stage_that_does_not_beat_a_constant_depth_is_reported(caplog):
    from models.training.validation import Validation
    from workflow_scripts.training.stage import check_against_constant

    log = logging.getLogger("test")
    constant = {"abs_rel": 0.385, "a1": 0.33}

    def check(metric: str, value: float, stage: str = "t") -> bool:
        validation = Validation(fn=lambda nets: {}, names=("abs_rel", "a1"), every=1, metric=metric,
                                mode="max" if metric == "a1" else "min", baseline=constant)
        return check_against_constant({"step": 60, "metric": metric, "value": value}, validation, stage,
                                      log, "see its history.csv")

    with caplog.at_level(logging.WARNING):  # a monocular run that learnt nothing (the SGDepth overlay)
        assert not check("abs_rel", 0.379, "kitti/teacher")
    assert "kitti/teacher" in caplog.text and "0.379" in caplog.text and "0.385" in caplog.text
    assert "see its history.csv" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert check("abs_rel", 0.24)
        assert not check("abs_rel", 0.31)  # above 0.8 x 0.385 = 0.308
        # an accuracy: its error 1 - a1 against 0.8 x the constant's 0.67 (0.536)
        assert not check("a1", 0.36)
        assert check("a1", 0.75)
    assert caplog.text.count("learnt no depth") == 2
