"""The training loop: schedules, step-deterministic batches, checkpoints, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from models.training.engine import (
    Schedule,
    StepSampler,
    build_optimizer,
    config_digest,
    load_checkpoint,
    train_step,
)
from tests.conftest import ROOT
from tests.training import toy_run


def test_step_lr_and_cyclic_lr():
    s = Schedule(steps=100, batch_size=2, lr=1e-4, lr_milestones=(15, 30))
    assert [s.lr_at(k) for k in (0, 14, 15, 29, 30)] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6])
    c = Schedule(steps=100, batch_size=2, lr=1e-3, optimizer="sgd", cyclic_min_lr=1e-4, cyclic_step=10)
    # triangular: min at 0, max at one half cycle, min again at a full cycle
    assert [c.lr_at(k) for k in (0, 5, 10, 15, 20)] == pytest.approx([1e-4, 5.5e-4, 1e-3, 5.5e-4, 1e-4])


def test_batches_are_a_function_of_the_step():
    a = StepSampler(10, 4, seed=3, start=0, stop=20)
    b = StepSampler(10, 4, seed=3, start=7, stop=20)
    assert list(a)[7:] == list(b)
    # every epoch visits every item once
    keys = [i for batch in list(a)[:5] for _, i in batch]
    assert sorted(keys[:10]) == list(range(10)) and sorted(keys[10:20]) == list(range(10))
    assert list(StepSampler(10, 4, seed=4, start=0, stop=3)) != list(a)[:3]


def test_training_learns_writes_history_and_resumes_to_the_same_weights(tmp_path):
    toy_run.main(str(tmp_path / "a"), 100)
    hist = pd.read_csv(tmp_path / "a" / "history.csv")
    assert list(hist["step"]) == list(range(1, 101))
    assert hist["mse"].iloc[-1] < 1e-3 * hist["mse"].iloc[0]
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state["step"] == 100 and state["digest"] == config_digest({"toy": 1})
    assert state["nets"]["lin.weight"].item() == pytest.approx(3.0, abs=0.05)
    assert state["nets"]["lin.bias"].item() == pytest.approx(-1.0, abs=0.05)
    # stop after 45 steps, then ask for 100: the run resumes and ends where a single run ends
    toy_run.main(str(tmp_path / "b"), 45)
    toy_run.main(str(tmp_path / "b"), 100)
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert b["step"] == 100
    assert torch.equal(b["nets"]["lin.weight"], state["nets"]["lin.weight"])
    assert list(pd.read_csv(tmp_path / "b" / "history.csv")["step"]) == list(range(1, 101))


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    toy_run.main(str(tmp_path), 10)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["digest"] = "something-else"
    torch.save(state, tmp_path / "checkpoint.pt")
    toy_run.main(str(tmp_path), 10)
    assert list(pd.read_csv(tmp_path / "history.csv")["step"]) == list(range(1, 11))


def test_killed_job_resumes_from_its_last_checkpoint(tmp_path):
    """Kill a training process mid-run (SIGKILL), re-run it: same final step count and the
    same weights as an uninterrupted run; no torn checkpoint is ever visible."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.training.toy_run", str(tmp_path / "k"), "40", "0.05"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    ckpt = tmp_path / "k" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 10 <= killed_at < 40
    out = subprocess.run(cmd[:-1], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert load_checkpoint(ckpt)["step"] == 40
    toy_run.main(str(tmp_path / "ref"), 40)
    ref = load_checkpoint(tmp_path / "ref" / "checkpoint.pt")
    assert torch.equal(load_checkpoint(ckpt)["nets"]["lin.weight"], ref["nets"]["lin.weight"])
    assert not list((tmp_path / "k").glob(".*.tmp"))
    # the history is the uninterrupted run's: rows logged after the last checkpoint are not doubled
    resumed = pd.read_csv(tmp_path / "k" / "history.csv")
    assert list(resumed["step"]) == list(range(1, 41))
    assert resumed["mse"].tolist() == pd.read_csv(tmp_path / "ref" / "history.csv")["mse"].tolist()
    # a finished run run again (-R, changed code or inputs) trains again from step 0: the
    # same history, not one restored from the finished checkpoint
    finished = load_checkpoint(ckpt)
    finished["nets"]["lin.weight"].zero_()
    finished["history"] = []
    torch.save(finished, ckpt)  # a restore would keep these zero weights and no history
    toy_run.main(str(tmp_path / "k"), 40)
    assert torch.equal(load_checkpoint(ckpt)["nets"]["lin.weight"], ref["nets"]["lin.weight"])
    again = pd.read_csv(tmp_path / "k" / "history.csv")
    assert list(again["step"]) == list(range(1, 41))
    assert again["mse"].tolist() == resumed["mse"].tolist()


def test_frozen_network_keeps_weights_and_bn_statistics_then_learns_at_its_own_rate(tmp_path):
    """frozen_until: no update and no batch-norm statistics before the step; lr_mult scales
    that network's learning rate (SGD: the update is exactly lr x mult x gradient)."""
    from torch import nn
    from torch.utils.data import Dataset

    from models.training.engine import train

    class Data(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, key):
            g = torch.Generator().manual_seed(key[1])
            return {"x": torch.randn(4, generator=g) * 3 + 1}

    def objective(batch, nets):
        y = nets["b"](nets["a"](batch["x"]))
        return (y**2).mean(), {}

    torch.manual_seed(0)
    nets = nn.ModuleDict({"a": nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), "b": nn.Linear(4, 1)})
    a0 = {k: v.clone() for k, v in nets["a"].state_dict().items()}
    b0 = nets["b"].weight.detach().clone()
    sched = Schedule(steps=3, batch_size=4, lr=0.01, optimizer="sgd", frozen_until=(("a", 3),),
                     lr_mult=(("b", 10.0),), checkpoint_every=100)
    train(nets, objective, Data(), sched, tmp_path / "frozen", seed=0, config={}, progress=False)
    for key, value in nets["a"].state_dict().items():  # weights and running statistics untouched
        assert torch.equal(value, a0[key]), key
    assert not torch.equal(nets["b"].weight, b0)
    assert all(p.requires_grad for p in nets.parameters())  # nothing left frozen afterwards
    with pytest.raises(ValueError, match="pose"):
        train(nets, objective, Data(), Schedule(steps=1, batch_size=4, frozen_until=(("pose", 1),)),
              tmp_path / "bad", seed=0, config={}, progress=False)


def test_train_step_sets_group_rates_clips_and_skips_a_non_finite_loss(caplog):
    """One SGD step: each network at lr_at(step) x its lr_mult, the gradient clipped to a total
    norm of clip_grad over all networks; a NaN loss changes nothing and is logged."""
    from torch import nn

    torch.manual_seed(0)
    nets = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 1)})
    sched = Schedule(steps=10, batch_size=1, lr=0.1, optimizer="sgd", lr_milestones=(5,),
                     lr_mult=(("b", 2.0),), clip_grad=0.5)
    opt = build_optimizer(nets, sched)
    batch = {"x": torch.full((1, 3), 100.0)}  # a gradient far above the clipping norm

    def objective(b, n):
        return ((n["a"](b["x"]) + n["b"](b["x"])) ** 2).sum(), {"k": 1.0}

    before = {k: v.clone() for k, v in nets.state_dict().items()}
    loss, logs = train_step(nets, opt, objective, batch, 5, sched)
    assert logs == {"k": 1.0} and float(loss.detach()) > 100
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.02])
    # SGD's first step is p -= lr x g (no momentum yet): recover g, check its total norm
    rate = {"a": 0.01, "b": 0.02}
    grads = [(before[k] - v) / rate[k[0]] for k, v in nets.state_dict().items()]
    assert torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item() == pytest.approx(0.5, rel=1e-4)
    after = {k: v.clone() for k, v in nets.state_dict().items()}
    loss, _ = train_step(nets, opt, lambda b, n: (objective(b, n)[0] * float("nan"), {}), batch, 6, sched)
    assert torch.isnan(loss) and "step 6: non-finite loss nan, update skipped" in caplog.text
    assert all(torch.equal(v, after[k]) for k, v in nets.state_dict().items())
