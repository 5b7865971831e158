"""Blow-ups stop loudly: the gradient norm of every logged step in the history, non-finite
steps skipped, and TrainingDiverged after more than max_nonfinite_steps of them in a row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from models.training.engine import NonFiniteGuard, Schedule, TrainingDiverged, load_checkpoint, train
from tests.tiny_kitti import write_teacher, write_tiny_raw
from tests.training import toy_run
from workflow_scripts.training import endo, kitti
from workflow_scripts.training.endo_options import EndoCommon, EndoTeacher
from workflow_scripts.training.options import KittiCommon, KittiStudent, KittiTeacher
from workflow_scripts.training.stage import StageInputs


class Keyed(toy_run.Points):
    """toy_run's points, each item also carrying its step."""

    def __getitem__(self, key):
        return {**super().__getitem__(key), "step": torch.tensor(key[0])}


def _mse(batch, nets):
    loss = ((nets["lin"](batch["x"]) - batch["y"]) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def _run(tmp_path, objective, steps=20, limit=3, **schedule):
    torch.manual_seed(0)
    nets = nn.ModuleDict({"lin": nn.Linear(1, 1)})
    sched = Schedule(
        **{"lr": 0.1, **schedule},
        steps=steps,
        batch_size=4,
        checkpoint_every=2,
        log_every=1,
        max_nonfinite_steps=limit,
    )
    train(nets, objective, Keyed(), sched, tmp_path, seed=7, config={}, progress=False)
    return nets


def test_a_blow_up_stops_after_max_nonfinite_steps_plus_one_in_a_row(tmp_path):
    """NaN losses from step 4 on, limit 3: steps 4..6 are skipped, step 7 raises, naming the
    step, the count, the last finite loss and the setting; the checkpoint of step 8 is never
    written (the one after step 6 stays) and the history has grad_norm in every row."""

    def objective(batch, nets):
        loss, logs = _mse(batch, nets)
        return (loss * math.nan if int(batch["step"][0]) >= 4 else loss), logs

    with pytest.raises(TrainingDiverged) as err:
        _run(tmp_path, objective)
    message = str(err.value)
    assert "at step 7 (0-based; step 8 of 20)" in message and "4 consecutive" in message
    assert "last finite loss" in message and "at step 3" in message
    assert "lower the learning rate" in message.lower() and "max_nonfinite_steps" in message
    assert "kitti.train.common / endoscopy.train.common" in message
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist["step"]) == list(range(1, 9))
    assert list(hist.columns[:5]) == ["step", "loss", "lr", "grad_norm", "seconds"]
    assert np.isfinite(hist["grad_norm"][:4]).all() and (hist["grad_norm"][:4] > 0).all()
    assert hist["grad_norm"][4:].isna().all() and hist["loss"][4:].isna().all()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 6


def test_a_huge_learning_rate_diverges_and_the_error_names_the_first_of_the_run(tmp_path):
    """SGD at lr 1e6 on y = 3x - 1 overflows within a few steps; limit 2: the run stops at the
    third non-finite step in a row, and that is the step the message names."""
    with pytest.raises(TrainingDiverged, match=r"step \d+ of 50") as err:
        _run(tmp_path, _mse, steps=50, limit=2, optimizer="sgd", lr=1e6)
    hist = pd.read_csv(tmp_path / "history.csv")
    finite = np.isfinite(hist["loss"]) & np.isfinite(hist["grad_norm"])
    assert not finite.iloc[-3:].any() and finite.iloc[-4]  # exactly limit + 1 in a row
    last = int(hist["step"].iloc[-1]) - 1  # rows are logged after `step` steps done
    assert f"at step {last} (0-based; step {last + 1} of 50)" in str(err.value)
    assert "3 consecutive" in str(err.value)


def test_isolated_nonfinite_steps_are_skipped_and_the_run_goes_on(tmp_path, caplog):
    """Limit 2: NaN losses at steps 2 and 3, a NaN gradient (finite loss) at step 6. The run
    ends; those steps change no weight, the others do; their rows log grad_norm as nan."""
    bad_loss, bad_grad, seen = {2, 3}, {6}, {}

    def objective(batch, nets):
        step = int(batch["step"][0])
        seen[step] = nets["lin"].weight.detach().clone()  # the weights before the step
        loss, logs = _mse(batch, nets)
        if step in bad_loss:
            loss = loss * math.inf
        if step in bad_grad:  # d sqrt(u) / du = inf at u = 0, times du / dw = 0: a NaN gradient
            loss = loss + torch.sqrt(nets["lin"].weight.sum() * 0.0)
        return loss, logs

    nets = _run(tmp_path, objective, steps=10, limit=2)
    assert len(seen) == 10
    for step in range(9):
        unchanged = torch.equal(seen[step + 1], seen[step])
        assert unchanged == (step in bad_loss | bad_grad), step
    assert not torch.equal(nets["lin"].weight, seen[9])
    hist = pd.read_csv(tmp_path / "history.csv").set_index("step")
    assert hist["grad_norm"].isna().tolist() == [s - 1 in bad_loss | bad_grad for s in range(1, 11)]
    assert np.isfinite(hist.loc[7, "loss"])  # the NaN-gradient step had a finite loss
    assert "step 6: non-finite gradient norm nan" in caplog.text
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 10


@pytest.mark.parametrize("clip", [0.0, 0.01])
def test_logged_grad_norm_is_the_total_norm_before_clipping(tmp_path, clip):
    """Two zeroed linear networks, pred = a(x) + b(x), loss = mean((pred - y)^2): the gradient
    of every weight is mean(-2 y x), of a's bias mean(-2 y); the logged norm is that of all
    three, with or without clipping (which then shows in the SGD update only)."""
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0]])
    y = torch.tensor([[1.0], [2.0], [-1.0]])

    class Fixed(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, key):
            return {"x": x[key[1]], "y": y[key[1]]}

    nets = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 1, bias=False)})
    for p in nets.parameters():
        nn.init.zeros_(p)

    def objective(batch, n):
        return ((n["a"](batch["x"]) + n["b"](batch["x"]) - batch["y"]) ** 2).mean(), {}

    g_w = (-2 * y.double() * x.double()).mean(0)
    g_b = (-2 * y.double()).mean()
    expected = math.sqrt(2 * float(g_w @ g_w) + float(g_b) ** 2)
    sched = Schedule(steps=1, batch_size=3, lr=0.1, optimizer="sgd", clip_grad=clip, log_every=1)
    train(nets, objective, Fixed(), sched, tmp_path, seed=0, config={}, progress=False)
    logged = pd.read_csv(tmp_path / "history.csv")["grad_norm"].item()
    assert logged == pytest.approx(expected, rel=1e-6)
    # SGD's first step is p -= lr x g: the applied gradient is clipped to `clip` (if any)
    applied = math.sqrt(sum(float((p.detach().double() / -0.1).pow(2).sum()) for p in nets.parameters()))
    assert applied == pytest.approx(clip or expected, rel=1e-5)


def test_guard_counts_only_consecutive_steps():
    guard = NonFiniteGuard(limit=1, steps=9)
    for step, loss in enumerate([math.nan, 1.0, math.nan, 2.0, math.nan]):  # never two in a row
        guard.check(step, loss, 1.0)
    expected = r"at step 5 \(0-based; step 6 of 9\): 2 consecutive .* last finite loss 2 at step 3"
    with pytest.raises(TrainingDiverged, match=expected):
        guard.check(5, 1.0, math.inf)  # a finite loss with an infinite gradient norm counts
    with pytest.raises(TrainingDiverged, match="no finite step in this run.*now 0"):
        NonFiniteGuard(limit=0, steps=2).check(0, math.nan, math.nan)


def _tiny_kitti(tmp_path) -> StageInputs:
    """The tiny KITTI-raw layout (tests/tiny_kitti.py), its split and an untrained teacher model."""
    tiny = write_tiny_raw(tmp_path)
    teacher = tmp_path / "teacher" / "model.pt"
    teacher.parent.mkdir()
    write_teacher(teacher, seed=1)
    return StageInputs(previous=teacher, split=tiny["split"], raw_root=tiny["root"], image_root=tiny["root"])


def test_a_diverged_kitti_stage_fails_and_writes_no_model(tmp_path):
    """The real stage runner (student, lr 1e6, max_nonfinite_steps 0, a checkpoint every step):
    TrainingDiverged, no model.pt, and the checkpoint on disk is that of the step before."""
    common = KittiCommon(
        size=(64, 64), batch_size=1, workers=0, unit="steps", checkpoint_every=1, max_nonfinite_steps=0
    )
    section = KittiStudent(length=4, lr_step=0, lr=1e6)
    out = tmp_path / "student" / "model.pt"
    with pytest.raises(TrainingDiverged, match=r"step \d+ of 4\): 1 consecutive") as err:
        kitti.run("student", common, section, _tiny_kitti(tmp_path), out, seed=3, threads=1)
    assert not out.exists()
    step = int(str(err.value).split("at step ")[1].split(" ")[0])
    assert step >= 1 and load_checkpoint(out.parent / "checkpoint.pt")["step"] == step
    hist = pd.read_csv(out.parent / "history.csv")
    assert len(hist) == step + 1 and np.isnan(hist["grad_norm"].iloc[-1])
    assert np.isfinite(hist["grad_norm"].iloc[:-1]).all()


def test_both_branches_pass_max_nonfinite_steps_to_the_schedule():
    plan = kitti.stage_plan("teacher", KittiCommon(max_nonfinite_steps=7), KittiTeacher(), None)
    assert plan.schedule(10).max_nonfinite_steps == 7
    common = EndoCommon(size=(64, 64), max_nonfinite_steps=0)
    plan = endo.stage_plan("teacher", common, EndoTeacher(), StageInputs())
    assert plan.schedule(10, **endo.schedule_extras(plan, 1)).max_nonfinite_steps == 0
    assert KittiCommon().max_nonfinite_steps == EndoCommon().max_nonfinite_steps == 5
    assert Schedule(steps=1, batch_size=1).max_nonfinite_steps == 5
