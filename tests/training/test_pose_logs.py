"""The pose diagnostics of the video stages' logs: the translations' length and their cosine to
the optical axis (a forward-driving camera's pose network that learnt a sideways motion)."""

from __future__ import annotations

import logging
import math

import pandas as pd
import pytest
import torch
from torch import nn

from models.networks.depth_net import DepthNet
from models.networks.pose_net import PoseNet
from models.training import kitti_objectives as ko
from workflow_scripts.training.kitti import check_pose_direction


def _pose(t: tuple[float, float, float], batch: int = 2) -> torch.Tensor:
    T = torch.eye(4).repeat(batch, 1, 1)
    T[:, :3, 3] = torch.tensor(t)
    return T


def test_pose_logs_of_hand_made_poses():
    forward = ko.pose_logs([_pose((0.0, 0.0, -0.15)), _pose((0.0, 0.0, 0.15))])
    assert forward == pytest.approx({"translation": 0.15, "translation_forward": 1.0})
    # 3-4-5: |t| 0.5, t_z / |t| 0.8; sideways: cosine 0; mean over sources and items
    logs = ko.pose_logs([_pose((0.3, 0.0, -0.4)), _pose((0.0, 0.2, 0.0))])
    assert logs == pytest.approx({"translation": 0.35, "translation_forward": 0.4})
    still = ko.pose_logs([_pose((0.0, 0.0, 0.0))])  # no motion: no direction, and no NaN
    assert still == {"translation": 0.0, "translation_forward": 0.0}


class _FixedPose(PoseNet):
    """A pose network whose 6-vector (axis-angle rotation, translation) is fixed."""

    def __init__(self, vec: list[float]) -> None:
        super().__init__(18)
        self.vec = torch.tensor(vec)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        return self.vec.expand(len(image_a), 6) + 0.0 * image_a.mean()


@pytest.mark.parametrize("stage", ["teacher", "finetune", "sc_depth"])
def test_video_stages_log_the_pose_diagnostics(stage):
    torch.manual_seed(0)
    b, h, w = 2, 64, 96
    color = torch.rand(b, 3, 3, h, w)
    K = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(b, 3, 3).clone()
    batch = {"color": color, "color_aug": color, "K": K}
    # a rotation about the optical axis changes neither the translation nor its direction; the
    # past frame's pose is the inverse (-R^T t): the same length and cosine
    nets = nn.ModuleDict({"depth": DepthNet(18), "pose": _FixedPose([0.0, 0.0, 0.2, 0.1, 0.0, -0.1])})
    photo = ko.PhotoOptions(frame_ids=(0, -1, 1), stereo=False)
    if stage == "teacher":
        objective = ko.TeacherObjective(ko.TeacherOptions(photo=photo, hints=False))
    elif stage == "sc_depth":  # both directions of each pair: t and its inverse, the same cosine
        objective = ko.ScDepthObjective(ko.ScDepthOptions(photo=photo))
    else:
        objective = ko.FinetuneObjective(ko.FinetuneOptions(photo=photo))
    _, logs = objective(batch, nets)
    assert logs["translation"] == pytest.approx(math.sqrt(0.02), rel=1e-5)
    assert logs["translation_forward"] == pytest.approx(math.sqrt(0.5), rel=1e-5)


def test_a_stereo_teacher_has_no_pose_to_log():
    torch.manual_seed(0)
    b, h, w = 2, 64, 96
    color = torch.rand(b, 2, 3, h, w)  # the target and the stereo frame
    K = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(b, 3, 3).clone()
    stereo_T = _pose((-0.1, 0.0, 0.0), b)
    batch = {"color": color, "color_aug": color, "K": K, "stereo_T": stereo_T}
    photo = ko.PhotoOptions(frame_ids=(0,), stereo=True)
    _, logs = ko.TeacherObjective(ko.TeacherOptions(photo=photo, hints=False))(
        batch, nn.ModuleDict({"depth": DepthNet(18)}))
    assert "translation" not in logs and "translation_forward" not in logs


def test_a_sideways_pose_network_is_reported(tmp_path, caplog):
    history = tmp_path / "history.csv"
    rows = {"step": [10, 20, 30, 40, 50, 60, 70, 80], "loss": [1.0] * 8,
            "translation_forward": [0.3, 0.5, 0.7, 0.99, 0.6, 0.2, 0.1, 0.3]}
    pd.DataFrame(rows).to_csv(history, index=False)
    with caplog.at_level(logging.WARNING):
        forward = check_pose_direction(history, "teacher")
    assert forward == pytest.approx(0.2)  # the last quarter of the logged steps: 0.1 and 0.3
    assert "kitti/teacher" in caplog.text and "0.20" in caplog.text and "sideways" in caplog.text
    caplog.clear()
    rows["translation_forward"][-2:] = [0.95, 0.97]  # the network found the axis in the end
    pd.DataFrame(rows).to_csv(history, index=False)
    with caplog.at_level(logging.WARNING):
        assert check_pose_direction(history, "teacher") == pytest.approx(0.96)
    assert caplog.text == ""
    # a stage without a pose network, or a rank that wrote no history: nothing to check
    pd.DataFrame({"step": [1], "loss": [1.0]}).to_csv(history, index=False)
    assert check_pose_direction(history, "student") is None
    assert check_pose_direction(tmp_path / "missing.csv", "teacher") is None
