"""Validation during training: the val columns of history.csv, best-model selection, and
resumption that selects exactly as an uninterrupted run."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from models.training.engine import Schedule, Validation, load_checkpoint, restore_best, train
from tests.training.toy_run import Points, objective

TRUE_W, TRUE_B = 3.0, -1.0


def _error(nets: nn.ModuleDict) -> dict[str, float]:
    """Distance of the line to y = 3x - 1 (a held-out "metric"), and whether eval mode is on."""
    lin = nets["lin"]
    assert not lin.training and not torch.is_grad_enabled()
    err = abs(lin.weight.item() - TRUE_W) + abs(lin.bias.item() - TRUE_B)
    return {"err": err, "w": lin.weight.item()}


def _run(out, steps: int, *, lr: float = 0.3, milestones=(), every: int = 5, mode: str = "min",
         bad_after: int | None = None) -> nn.ModuleDict:
    """Train the toy line; from step ``bad_after`` on, the objective pulls it to a wrong line
    (the last steps made worse)."""
    torch.manual_seed(0)
    nets = nn.ModuleDict({"lin": nn.Linear(1, 1)})
    seen = {"step": 0}

    def obj(batch, n):
        seen["step"] += 1
        if bad_after is not None and seen["step"] > bad_after:
            pred = n["lin"](batch["x"])
            loss = ((pred - (-2 * batch["x"] + 5)) ** 2).mean()
            return loss, {"mse": float(loss.detach())}
        return objective(batch, n)

    sched = Schedule(steps=steps, batch_size=4, lr=lr, checkpoint_every=5, log_every=2,
                     lr_milestones=milestones)
    val = Validation(fn=_error, names=("err", "w"), every=every, metric="err" if mode == "min" else "w",
                     mode=mode)
    train(nets, obj, Points(), sched, out, seed=7, config={"toy": 2}, progress=False, validation=val)
    return nets


def test_best_model_is_the_best_validated_step_when_the_last_steps_get_worse(tmp_path):
    nets = _run(tmp_path, 60, bad_after=40)
    hist = pd.read_csv(tmp_path / "history.csv")
    # val columns in every row, NaN where no validation ran; validated every 5 steps and at the end
    assert {"val_err", "val_w"} <= set(hist.columns)
    validated = hist.dropna(subset=["val_err"])
    assert list(validated["step"]) == list(range(5, 61, 5))
    assert hist.loc[hist["step"] == 2, "val_err"].isna().all()
    # the last steps made the line worse: the final weights are not the best
    best_row = validated.loc[validated["val_err"].idxmin()]
    assert best_row["step"] <= 40 < validated["step"].iloc[-1]
    assert validated["val_err"].iloc[-1] > 10 * best_row["val_err"]
    with torch.no_grad():
        last_err = _error(nets.eval())["err"]
    assert last_err == pytest.approx(validated["val_err"].iloc[-1], rel=1e-6)
    # restore_best loads the best step's weights: their metric is the best logged one
    info = restore_best(tmp_path, nets)
    assert info == {"step": int(best_row["step"]), "metric": "err",
                    "value": pytest.approx(best_row["val_err"])}
    with torch.no_grad():
        assert _error(nets.eval())["err"] == pytest.approx(best_row["val_err"], rel=1e-6)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["best"]["step"] == info["step"]


def test_mode_max_keeps_the_largest_value(tmp_path):
    nets = _run(tmp_path, 30, mode="max", every=3)
    hist = pd.read_csv(tmp_path / "history.csv").dropna(subset=["val_w"])
    info = restore_best(tmp_path, nets)
    assert info["value"] == pytest.approx(hist["val_w"].max())
    assert info["step"] == int(hist.loc[hist["val_w"].idxmax(), "step"])


def test_resumed_run_selects_as_an_uninterrupted_one(tmp_path):
    _run(tmp_path / "a", 60, bad_after=40)
    a = restore_best(tmp_path / "a", nn.ModuleDict({"lin": nn.Linear(1, 1)}))
    _run(tmp_path / "b", 35)  # stopped after 35 steps (the bad steps have not started)
    _run(tmp_path / "b", 60, bad_after=40 - 35)  # resumed: the objective counts its own calls
    b = restore_best(tmp_path / "b", nn.ModuleDict({"lin": nn.Linear(1, 1)}))
    assert a == b
    ha = pd.read_csv(tmp_path / "a" / "history.csv")
    hb = pd.read_csv(tmp_path / "b" / "history.csv")
    pd.testing.assert_frame_equal(ha.drop(columns="seconds"), hb.drop(columns="seconds"))


def test_a_fresh_run_forgets_an_earlier_best(tmp_path):
    _run(tmp_path, 20)
    assert (tmp_path / "best.pt").is_file()
    # a finished checkpoint trains again from 0 (forced re-run): with no finite validation,
    # nothing of the earlier run may be restored
    torch.manual_seed(0)
    nets = nn.ModuleDict({"lin": nn.Linear(1, 1)})
    val = Validation(fn=lambda n: {"err": math.nan}, names=("err",), every=5, metric="err")
    sched = Schedule(steps=20, batch_size=4, lr=0.1, checkpoint_every=5, log_every=2)
    train(nets, objective, Points(), sched, tmp_path, seed=7, config={"toy": 2}, progress=False,
          validation=val)
    assert restore_best(tmp_path, nets) is None and not (tmp_path / "best.pt").exists()


def test_validation_checks_its_settings():
    with pytest.raises(ValueError, match="metric"):
        Validation(fn=_error, names=("err",), every=5, metric="abs_rel")
    with pytest.raises(ValueError, match="every"):
        Validation(fn=_error, names=("err",), every=0, metric="err")
    bad = Validation(fn=lambda n: {"w": 1.0}, names=("err", "w"), every=1, metric="err")
    with pytest.raises(ValueError, match="missing"):
        bad.run(nn.ModuleDict({"lin": nn.Linear(1, 1)}))


def test_no_validation_before_first():
    val = Validation(fn=_error, names=("err",), every=20, metric="err", first=30)
    assert [d for d in range(1, 61) if val.due(d, 60)] == [40, 60]
    assert [d for d in range(1, 51) if Validation(_error, ("err",), 20, "err").due(d, 50)] == [20, 40, 50]
