"""Data-parallel training (models/training/distributed.py, workflow_scripts/training/launch.py) on
the CPU with gloo: the endoscopy teacher (a UNet: no batch normalisation, per-item-mean losses,
per-item augmentation drawn from the item key) trained by 2 processes under torchrun ends with the
weights and history of a 1-process run of the same global batch and seed, within float
tolerance; a 2-process run whose rank 1 is killed resumes from its last checkpoint and ends with
the same weights as the uninterrupted 2-process run.

Tolerance: the two runs differ only in the order of the float32 sums of the batch mean (two
shares' means averaged instead of one mean of four items); over 6 SGD steps that leaves weight
differences of order 1e-7, far below ``atol 1e-5`` (a wrong share or a missing gradient average
moves weights by the learning rate, 1e-3).
"""

from __future__ import annotations

import csv
import math

import pytest
import torch

from models.training.engine import load_checkpoint
from tests.endo.endo_synthetic import synthetic_scene
from workflow_scripts.endo.sfm_data import SfMDataOptions
from workflow_scripts.endo.sparse import write_sfm_data
from workflow_scripts.training import run_stage
from workflow_scripts.training.launch import LaunchRequest, launch, torchrun_command
from workflow_scripts.training.stage import StageInputs

COMMON = {"size": [64, 64], "batch_size": 4, "workers": 0, "unit": "steps", "checkpoint_every": 2,
          "items_per_epoch": 0, "adjacent_range": [1, 3], "sampling": "exact", "bf16": True,
          "channels_last": False, "threads": 1, "val_every": 3, "val_fraction": 0.25}
TEACHER = {"length": 6, "lr_step": 0, "optimizer": "sgd", "lr": 1e-3, "cyclic": {"min_lr": 1e-4, "step": 2},
           "clip_grad": 10.0, "sfl_weight": 20.0, "dcl_weight": 5.0,
           "dcl_warmup": {"weight": 0.1, "length": 1}, "consistency": "normalized_distance",
           "ssl_weight": 0.3, "augment": True, "network": {"kind": "unet", "width": 0.25}}
TIMEOUT = 240  # s for one torchrun launch (about 15 s on 2 cores)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """A synthetic 12-view sequence prepared as sfm_data (as tests/endo/test_endo_training.py)."""
    tmp = tmp_path_factory.mktemp("dist")
    scene = synthetic_scene(tmp / "seqA" / "frames", n_views=12, n_points=800, seed=3, size=(128, 160))
    scene.visibility[:] = 1
    opts = SfMDataOptions(downsampling=2.0, network_downsampling=32, inlier_percentage=0.0,
                          visibility_overlap=4)
    write_sfm_data(scene, opts, tmp / "seqA" / "sfm_data.npz", tmp / "seqA" / "sfm_data.json")
    inputs = StageInputs(sfm_data=(tmp / "seqA" / "sfm_data.npz",), frames=(tmp / "seqA" / "frames",))
    return tmp, inputs


def _train(processes: int) -> dict:
    return {"common": {**COMMON, "processes": processes}, "section": TEACHER}


def _weights(folder) -> dict[str, torch.Tensor]:
    return torch.load(folder / "model.pt", weights_only=True)["nets"]["depth"]


def _history(folder) -> list[dict[str, float]]:
    with (folder / "history.csv").open() as fh:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-4, abs=1e-6)


def test_two_gloo_processes_train_like_one_and_resume_after_a_killed_rank(sequence, monkeypatch):
    tmp, inputs = sequence
    one, two, killed = tmp / "one" / "teacher", tmp / "two" / "teacher", tmp / "killed" / "teacher"
    run_stage("endo", "teacher", _train(1), inputs, one / "model.pt", seed=3, threads=1)
    info = run_stage("endo", "teacher", _train(2), inputs, two / "model.pt", seed=3, threads=1)
    assert info["steps"] == 6 and "best" in info  # rank 0's summary, through the launcher

    wa, wb = _weights(one), _weights(two)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    print(f"largest weight difference, 2 gloo processes vs 1: {worst:.3g}")
    assert worst < 1e-5, f"2 processes differ from 1 by {worst:g}"
    ha, hb = _history(one), _history(two)
    assert [r["step"] for r in ha] == [r["step"] for r in hb] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(ha, hb, strict=True):  # global loss, logs and validation on every row
        assert ra.keys() == rb.keys() and all(_close(ra[k], rb[k]) for k in ra), (ra, rb)
    assert load_checkpoint(two / "checkpoint.pt")["step"] == 6 and (two / "best.pt").is_file()

    # rank 1 dies (SIGKILL) during step 3: torchrun stops rank 0, the rule fails ...
    monkeypatch.setenv("DIST_FAULT_STEP", "3")
    request = LaunchRequest.make("endo", "teacher", _train(2), inputs, killed / "model.pt", seed=3, threads=1)
    with pytest.raises(RuntimeError, match="on 2 processes failed.*a rank was killed.*resumes from the last"):
        launch(request, 2, timeout=TIMEOUT, entry="tests.training.dist_fault")
    assert load_checkpoint(killed / "checkpoint.pt")["step"] == 2 and not (killed / "model.pt").exists()
    # ... and the re-run resumes from step 2 on both ranks: the uninterrupted run's weights
    monkeypatch.delenv("DIST_FAULT_STEP")
    run_stage("endo", "teacher", _train(2), inputs, killed / "model.pt", seed=3, threads=1)
    wk = _weights(killed)
    assert all(torch.equal(wk[k], wb[k]) for k in wb)
    hk = _history(killed)
    assert len(hk) == len(hb) and all(_close(a[k], b[k]) for a, b in zip(hk, hb, strict=True) for k in a)


def test_the_global_batch_must_split_over_the_processes():
    from workflow_scripts.training.endo_options import EndoCommon
    from workflow_scripts.util.options import ConfigError, load_options

    where = "endoscopy.train.common"
    with pytest.raises(ConfigError, match=r"batch_size 6 does not split over the 4 processes \(processes 4"):
        load_options(EndoCommon, {**COMMON, "batch_size": 6, "processes": 4}, where)
    with pytest.raises(ConfigError, match=r"over the 6 processes \(processes 2 x nodes 3\).*multiple of 6"):
        load_options(EndoCommon, {**COMMON, "batch_size": 8, "processes": 2, "nodes": 3}, where)
    assert load_options(EndoCommon, {**COMMON, "batch_size": 12, "processes": 2, "nodes": 3}, "x").nodes == 3


def test_a_launch_request_round_trips_the_stage_inputs(tmp_path):
    inputs = StageInputs(previous=tmp_path / "teacher" / "model.pt", split=tmp_path / "train_files.txt",
                         hints=(tmp_path / "h1", tmp_path / "h2"), raw_root=tmp_path / "raw", image_ext="jpg")
    request = LaunchRequest.make("kitti", "student", {"common": {"processes": 2}, "section": {}}, inputs,
                                 tmp_path / "student" / "model.pt", seed=5, threads=3)
    back = LaunchRequest.read(request.write())
    assert back == request and back.stage_inputs() == inputs
    cmd = torchrun_command(tmp_path / "r.json", 2)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[-4:] == ["-m", "workflow_scripts.training.launch", "--request", str(tmp_path / "r.json")]
