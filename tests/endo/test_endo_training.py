"""Endoscopy training: pair dataset geometry, SfM objectives, stage runs with resume, and the
depth.npz of predict_endo_depth, on a synthetic scene whose points lie on a known plane."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from endo_synthetic import synthetic_scene

from models import geometry as G
from models import losses as L
from models.training import endo_objectives as eo
from models.training.engine import load_checkpoint
from workflow_scripts.endo.dataset import (
    EndoDataOptions,
    EndoPairDataset,
    EndoSequence,
    partner_offset,
    training_views,
)
from workflow_scripts.endo.evaluate import median_scaled_errors
from workflow_scripts.endo.predict import predict_sequence
from workflow_scripts.endo.sfm_data import SfMDataOptions, project_points
from workflow_scripts.endo.sparse import sparse_depth, write_sfm_data
from workflow_scripts.training import BRANCHES, endo
from workflow_scripts.training.endo_options import EndoCommon
from workflow_scripts.training.endo_validation import constant_baseline, load_val_set, validate_depth
from workflow_scripts.training.stage import StageInputs
from workflow_scripts.util.options import load_options

PLANE_N, PLANE_D = np.array([-0.5, 0.0, 1.0]), 5.0  # every point on the tilted world plane n . X = d


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    """A synthetic sequence (12 views) whose points lie on a known plane, prepared as sfm_data."""
    tmp = tmp_path_factory.mktemp("endo_train")
    scene = synthetic_scene(tmp / "seqA" / "frames", n_views=12, n_points=800, seed=3, size=(128, 160))
    scene.points *= PLANE_D / (scene.points @ PLANE_N)[:, None]
    scene.cam_from_world[:, :3, 3] *= 2.0  # twice the motion: flows well above the pixel rounding
    scene.visibility[:] = 1
    opts = SfMDataOptions(
        downsampling=2.0, network_downsampling=32, inlier_percentage=0.0, visibility_overlap=4
    )
    npz = tmp / "seqA" / "sfm_data.npz"
    write_sfm_data(scene, opts, npz, tmp / "seqA" / "sfm_data.json")
    return {"npz": npz, "frames": tmp / "seqA" / "frames", "tmp": tmp}


def plane_depth(seq: EndoSequence, view: int) -> np.ndarray:
    """True camera z (H, W) of the plane at every pixel of ``view`` (SfM units)."""
    T = seq.data["cam_from_world"][view]
    R, t = T[:3, :3], T[:3, 3]
    h, w = seq.hw
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(seq.K).T
    return (PLANE_D + PLANE_N @ (R.T @ t)) / (rays @ (R @ PLANE_N))


@pytest.mark.parametrize("size", [None, (32, 64)])
def test_sparse_flow_and_depth_are_the_projections_of_the_points(plane, size):
    seq = EndoSequence("seqA", plane["npz"], plane["frames"], size)
    d = seq.data
    if size is None:  # at the network size: exactly sfm_data's samples
        sel = d["sparse_view"] == 2
        assert np.array_equal(seq.samples[2][0], d["sparse_point"][sel])
        assert np.array_equal(seq.samples[2][1], d["sparse_xy"][sel])
    h, w = seq.hw
    flow, valid = seq.sparse_flow(2, 5)
    depth, dmask = seq.sparse_depth(2)
    pid, xy, _ = seq.samples[2]
    assert len(pid) > 30 and valid.sum() == len(pid)
    uv_a, z_a = project_points(seq.K, d["cam_from_world"][2], d["points"][pid])
    uv_b, _ = project_points(seq.K, d["cam_from_world"][5], d["points"][pid])
    assert np.array_equal(np.round(uv_a), xy)
    got = flow[xy[:, 1], xy[:, 0]] * [w, h] + xy
    assert np.allclose(got, np.round(uv_b), atol=1e-4)
    assert np.allclose(depth[xy[:, 1], xy[:, 0]] * d["global_scale"], z_a, rtol=1e-5)
    assert dmask.sum() == len(pid)
    # the plane's analytic depth agrees with the sparse depth (checks K at the training size)
    true = plane_depth(seq, 2)
    assert np.allclose(true[xy[:, 1], xy[:, 0]], z_a, rtol=0.02)


def test_pairs_are_deterministic_inside_the_window_and_pose_is_relative(plane):
    seq = EndoSequence("seqA", plane["npz"], plane["frames"], (64, 64))
    ds = EndoPairDataset([seq], EndoDataOptions(size=(64, 64), adjacent_range=(2, 10)), seed=5)
    a, b = ds[(7, 3)], ds[(7, 3)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    for step in range(40):
        v1, v2 = ds[(step, step % 12)]["views"].tolist()
        assert 2 <= abs(v2 - v1) <= 4  # capped by the visibility window (4)
    item = ds[(1, 0)]
    v1, v2 = item["views"].tolist()
    T = seq.data["cam_from_world"]
    X = np.append(seq.data["points"][0], 1.0)
    X1, X2 = T[v1] @ X, T[v2] @ X
    M = item["cam2_from_cam1"].double().numpy()
    s = seq.global_scale
    assert np.allclose(M[:3, :3] @ (X1[:3] / s) + M[:3, 3], X2[:3] / s, atol=1e-5)
    assert np.allclose(M @ item["cam1_from_cam2"].double().numpy(), np.eye(4), atol=1e-5)
    rng = np.random.default_rng(0)
    assert all(partner_offset(0, 10, (2, 4), rng) in (2, 3, 4) for _ in range(20))
    assert all(partner_offset(9, 10, (2, 4), rng) in (-2, -3, -4) for _ in range(20))


def _plane_batch(plane) -> tuple[EndoSequence, dict, torch.Tensor]:
    """The plane sequence at 64 x 64, 4 pairs 4 views apart, their true depths (4, 2, 1, H, W)."""
    seq = EndoSequence("seqA", plane["npz"], plane["frames"], (64, 64))
    ds = EndoPairDataset([seq], EndoDataOptions(size=(64, 64), adjacent_range=(4, 4), augment=False), seed=1)
    items = [ds[(0, i)] for i in range(4)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    true = [torch.stack([torch.from_numpy(plane_depth(seq, v)).float() for v in it["views"].tolist()])
            for it in items]
    return seq, batch, torch.stack(true)[:, :, None]


def test_sfm_objective_is_low_for_the_true_depth_and_high_for_wrong_ones(plane):
    seq, batch, true = _plane_batch(plane)
    obj = eo.SfMObjective(eo.SfMLossOptions())
    good = obj.terms(batch, 3.7 * true)  # any scale: the depth-scaling layer recovers it
    assert torch.allclose(good["depth"], true / seq.global_scale, rtol=0.01)  # pixel rounding of the samples
    wrong = obj.terms(batch, torch.ones_like(true))
    bumped = obj.terms(batch, true * (1 + 0.3 * torch.linspace(-1, 1, 64)).view(1, 1, 1, 1, 64))
    # the flow of the true depth is off by the rounding of the SfM pixels only
    assert float(good["flow"]) < 0.6 * min(float(wrong["flow"]), float(bumped["flow"]))
    assert float(good["consistency"]) < 0.02
    assert float(good["consistency"]) < 0.5 * float(bumped["consistency"])
    assert float(good["spread"]) < 0.2 * float(wrong["spread"])


def test_a_pair_whose_depth_blows_the_flow_up_gets_no_flow_loss(plane):
    """One pair's depth with spikes towards camera 1 (3 of its ~660 points land near or behind
    camera 2's plane): its sparse-flow error is huge. With the outlier threshold that direction
    counts 0, so the flow term is the other directions' share and its gradient stays that of the
    sane pairs."""
    _, batch, true = _plane_batch(plane)
    spiked = true.clone()
    for y, x in (batch["sparse_flow_mask"][0, 0, 0] > 0).nonzero()[:3]:  # 3 of pair 0's frame-1 samples
        spiked[0, 0, 0, y, x] *= 0.01
    sane = eo.SfMObjective(eo.SfMLossOptions()).terms(batch, true)
    plain = eo.SfMObjective(eo.SfMLossOptions()).terms(batch, spiked)
    robust = eo.SfMObjective(eo.SfMLossOptions(flow_outlier_threshold=0.2)).terms(batch, spiked)
    assert float(plain["flow"]) > 100 * float(sane["flow"])
    assert float(robust["flow_outliers"]) == pytest.approx(1 / 8)  # 1 of 2 x 4 directions
    per = [float(eo.SfMObjective(eo.SfMLossOptions()).terms({k: v[i:i + 1] for k, v in batch.items()},
                                                            spiked[i:i + 1])["flow"]) for i in range(4)]
    assert per[0] > 0.2 > max(per[1:])
    # the other 7 directions as they are (a spike in frame 1 changes only the flow 1 -> 2), the
    # outlier's 0: the sane flow term less pair 0's sane 1 -> 2 direction, over the 8 directions
    m, flow, fmask = batch["mask"][:1], batch["sparse_flow"][:1, 0], batch["sparse_flow_mask"][:1, 0]
    f12 = G.flow_from_depth(sane["depth"][:1, 0], batch["K"][:1], batch["cam2_from_cam1"][:1])
    sane_12 = float(L.sparse_flow_loss(flow * m, f12 * m, fmask * m))
    expect = float(sane["flow"]) - sane_12 / 8
    assert float(robust["flow"]) == pytest.approx(expect, rel=1e-4)


COMMON = {
    "size": [64, 64],
    "batch_size": 2,
    "workers": 0,
    "unit": "steps",
    "checkpoint_every": 2,
    "items_per_epoch": 0,
    "adjacent_range": [1, 3],
    "sampling": "exact",
    "bf16": True,
    "channels_last": False,
}
SFM_STAGE = {
    "lr_step": 0,
    "optimizer": "adam",
    "lr": 1e-3,
    "cyclic": {"min_lr": 1e-4, "step": 2},
    "clip_grad": 10.0,
    "sfl_weight": 20.0,
    "dcl_weight": 5.0,
    "dcl_warmup": {"weight": 0.1, "length": 1},
    "consistency": "normalized_distance",
    "ssl_weight": 0.3,
    "augment": True,
}
SECTIONS = {
    "teacher": {**SFM_STAGE, "length": 4, "network": {"kind": "unet", "width": 0.25}},
    "student": {
        "length": 2,
        "lr_step": 0,
        "network": {"kind": "fc_densenet57", "width": 0.25},
        "optimizer": "adam",
        "lr": 1e-3,
        "cyclic": {"min_lr": 0.0, "step": 1},
        "clip_grad": 0.0,
        "eigen_lambda": None,
        "augment": True,
    },
    "finetune": {**SFM_STAGE, "length": 2},
}


def _run(plane, out, stage, previous=None, **changes):
    """Run ``stage`` on the plane sequence (``changes``: keys of its section to change)."""
    common = load_options(EndoCommon, COMMON, "endoscopy.train.common")
    section = load_options(
        BRANCHES["endo"][3][stage], {**SECTIONS[stage], **changes}, f"endoscopy.train.{stage}"
    )
    inputs = StageInputs(previous=previous, sfm_data=(plane["npz"],), frames=(plane["frames"],))
    return endo.run(stage, common, section, inputs, out / stage / "model.pt", seed=3, threads=1)


def test_stages_run_resume_and_predict(plane, monkeypatch):
    tmp = plane["tmp"]
    _run(plane, tmp / "a", "teacher")
    # interrupted after the checkpoint of step 2, then run again: same weights as uninterrupted
    real = eo.SfMObjective.__call__

    def failing(self, batch, nets):
        if int(batch["step"][0]) == 2:
            raise RuntimeError("killed")
        return real(self, batch, nets)

    monkeypatch.setattr(eo.SfMObjective, "__call__", failing)
    with pytest.raises(RuntimeError, match="killed"):
        _run(plane, tmp / "b", "teacher")
    assert load_checkpoint(tmp / "b" / "teacher" / "checkpoint.pt")["step"] == 2
    monkeypatch.setattr(eo.SfMObjective, "__call__", real)
    _run(plane, tmp / "b", "teacher")
    wa = torch.load(tmp / "a" / "teacher" / "model.pt", weights_only=True)["nets"]["depth"]
    wb = torch.load(tmp / "b" / "teacher" / "model.pt", weights_only=True)["nets"]["depth"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    hist = (tmp / "b" / "teacher" / "history.csv").read_text().splitlines()
    assert hist[0].startswith("step,loss,lr") and len(hist) == 1 + 4
    _run(plane, tmp / "a", "student", tmp / "a" / "teacher" / "model.pt")
    _run(plane, tmp / "a", "finetune", tmp / "a" / "student" / "model.pt")
    meta = torch.load(tmp / "a" / "finetune" / "model.pt", weights_only=True)["meta"]
    assert meta["network"]["kind"] == "fc_densenet57" and meta["stage"] == "finetune"

    out = predict_sequence(tmp / "a" / "finetune" / "model.pt", plane["npz"], plane["frames"])
    d = EndoSequence("seqA", plane["npz"], plane["frames"]).data
    n, (h, w) = len(d["view_indexes"]), d["input_size"]
    assert out["depth"].shape == (n, h, w) and out["depth"].dtype == np.float32
    assert out["frame_indexes"].dtype == np.int64 and np.array_equal(out["frame_indexes"], d["view_indexes"])
    assert out["K"].dtype == np.float64 and np.array_equal(out["K"], d["K"])
    assert out["mask"].dtype == np.uint8 and set(np.unique(out["mask"])) <= {0, 1}
    assert np.all(out["depth"][:, out["mask"] == 0] == 0)
    # SfM world units: per frame, depth = the network's raw depth x frame_scale, where
    # frame_scale / global_scale is the depth-scaling layer's mean of sparse z / (eps + raw) over
    # the samples it uses (the frame's rasterised sparse depth, points deeper than half its mean)
    g = float(d["global_scale"])
    for v in range(n):
        sd, sm = sparse_depth(d, v)
        z = sd[sm > 0]
        keep = z > 0.5 * z.mean()
        raw = out["depth"][v][sm > 0][keep].astype(np.float64) / out["frame_scales"][v]
        assert out["frame_scales"][v] == pytest.approx(g * np.mean(z[keep] / (1e-8 + raw)), rel=1e-5)


def _killed_at(objective: type, step: int):
    """``objective.__call__`` that raises at ``step`` (a job killed during that step)."""
    real = objective.__call__

    def call(self, batch, nets):
        if int(batch["step"][0]) == step:
            raise RuntimeError("killed")
        return real(self, batch, nets)

    return call


def test_a_new_teacher_restarts_an_interrupted_student(plane, monkeypatch, caplog):
    """The student's checkpoint belongs to the teacher it learnt from: an interrupted student
    resumes with the same teacher, but once the teacher is retrained (other weights) it trains
    from step 0 again, to exactly the weights of a fresh run on the new teacher."""
    tmp = plane["tmp"]
    teacher = tmp / "c" / "teacher" / "model.pt"

    def run_student(out):  # checkpoints at steps 2 and 4
        return _run(plane, out, "student", teacher, length=4)

    _run(plane, tmp / "c", "teacher")
    monkeypatch.setattr(eo.DistillObjective, "__call__", _killed_at(eo.DistillObjective, 2))
    with pytest.raises(RuntimeError, match="killed"):
        run_student(tmp / "c")
    assert load_checkpoint(tmp / "c" / "student" / "checkpoint.pt")["step"] == 2
    # the same teacher: the student resumes from its checkpoint (and is killed again)
    monkeypatch.setattr(eo.DistillObjective, "__call__", _killed_at(eo.DistillObjective, 3))
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError, match="killed"):
        run_student(tmp / "c")
    assert "resuming from" in caplog.text and "at step 2" in caplog.text
    monkeypatch.undo()
    _run(plane, tmp / "c", "teacher", lr=5e-3)  # another teacher, written over the first
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_student(tmp / "c")
    assert "resuming from" not in caplog.text
    run_student(tmp / "d")  # a fresh student of the new teacher
    restarted = torch.load(tmp / "c" / "student" / "model.pt", weights_only=True)["nets"]["depth"]
    fresh = torch.load(tmp / "d" / "student" / "model.pt", weights_only=True)["nets"]["depth"]
    assert all(torch.equal(restarted[k], fresh[k]) for k in fresh)


def test_held_out_views_are_in_no_training_pair(plane):
    """val_fraction holds out each sequence's last views: ceil(fraction n) of them, at least one,
    two always train; no drawn pair touches them."""
    cases = ((12, 0.25), (12, 0.1), (10, 0.1), (3, 0.5), (2, 0.5), (12, 0.0))
    assert [training_views(n, f) for n, f in cases] == [9, 10, 9, 2, 2, 12]
    seq = EndoSequence("seqA", plane["npz"], plane["frames"], (64, 64))
    data = EndoPairDataset([seq], EndoDataOptions(size=(64, 64), adjacent_range=(1, 3), val_fraction=0.25,
                                                  items_per_epoch=40), seed=2)
    assert data.n_train == [9] and len(data.index) == 9
    views = {int(v) for draw in range(10) for i in range(40) for v in data[(draw, i)]["views"]}
    assert max(views) == 8 and min(views) == 0


class _Constant(torch.nn.Module):
    """A depth network that predicts 2.0 everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return [self.w * torch.ones_like(x[:, :1])]


def test_validation_scores_held_out_views_like_the_evaluation(plane):
    """A constant depth scores, per held-out view, mean |median(z) - z| / z of its sparse depths:
    a network that outputs one, and the constant baseline a stage's best step is checked against."""
    seq = EndoSequence("seqA", plane["npz"], plane["frames"], (64, 64))
    val = load_val_set([seq], 0.25)
    assert [list(h.views) for h in val] == [[9, 10, 11]]
    expect_rel, expect_d1 = [], []
    for v in (9, 10, 11):
        d, m = seq.sparse_depth(v)
        z = d[m > 0].astype(np.float64)
        expect_rel.append(np.mean(np.abs(np.median(z) - z) / z))
        expect_d1.append(np.mean(np.maximum(np.median(z) / z, z / np.median(z)) < 1.25))
    got = validate_depth(torch.nn.ModuleDict({"depth": _Constant()}), val)
    assert got["abs_rel"] == pytest.approx(np.mean(expect_rel), rel=1e-6) and got["abs_rel"] > 0.01
    assert got["delta1"] == pytest.approx(np.mean(expect_d1), rel=1e-6)
    assert constant_baseline(val) == pytest.approx(got, rel=1e-6)  # what a stage must beat
    assert median_scaled_errors(np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0])) == (0.0, 1.0)


def test_a_validated_stage_keeps_its_best_step_as_model_pt(plane):
    """Validated at every step: history.csv's val_* columns; model.pt is the best step (its score
    recomputed from the file matches the logged one), last.pt the last."""
    import pandas as pd

    from models.model_file import load_model

    tmp = plane["tmp"] / "val"
    common = load_options(EndoCommon, {**COMMON, "val_every": 1, "val_fraction": 0.25},
                          "endoscopy.train.common")
    section = load_options(BRANCHES["endo"][3]["teacher"], {**SECTIONS["teacher"], "length": 6, "lr": 3e-3},
                           "endoscopy.train.teacher")
    inputs = StageInputs(sfm_data=(plane["npz"],), frames=(plane["frames"],))
    out = tmp / "teacher" / "model.pt"
    info = endo.run("teacher", common, section, inputs, out, seed=5, threads=1)
    hist = pd.read_csv(out.parent / "history.csv")
    assert list(hist["step"]) == list(range(1, 7)) and hist["val_abs_rel"].notna().all()
    assert hist["val_abs_rel"].nunique() > 1
    best = int(hist.loc[hist["val_abs_rel"].idxmin(), "step"])
    assert info["best"]["step"] == best and (out.parent / "last.pt").is_file()
    seq = EndoSequence("seqA", plane["npz"], plane["frames"], tuple(common.size))
    val = load_val_set([seq], 0.25)
    for path, step in ((out, best), (out.parent / "last.pt", 6)):
        net, meta = load_model(path)
        score = validate_depth(torch.nn.ModuleDict({"depth": net}), val)["abs_rel"]
        assert score == pytest.approx(hist.loc[hist["step"] == step, "val_abs_rel"].item(), rel=1e-4)
    assert meta["train_views"] == {"seqA": 9}
