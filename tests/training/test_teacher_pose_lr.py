"""kitti.train.teacher.pose_lr: a video teacher's pose network at its own learning rate."""

import pytest

from workflow_scripts.training import kitti
from workflow_scripts.training.options import KittiCommon, KittiTeacher
from workflow_scripts.util.options import ConfigError, load_options

MONO = {"stereo": False, "hints": False, "frame_ids": [0, -1, 1], "lr": 1.0e-4}


def _schedule(teacher: dict):
    section = load_options(KittiTeacher, teacher, "kitti.train.teacher")
    plan = kitti.stage_plan("teacher", KittiCommon(), section, None)
    return plan.schedule(100, **kitti.pose_schedule(plan, 100))


def test_pose_lr_sets_the_pose_networks_rate_as_a_multiple_of_lr():
    assert _schedule({**MONO, "pose_lr": 1.0e-3}).lr_mult == (("pose", pytest.approx(10.0)),)
    assert _schedule({**MONO, "pose_lr": 5.0e-5}).lr_mult == (("pose", pytest.approx(0.5)),)
    # unset: one rate for both networks (monodepth2), and nothing is frozen
    plain = _schedule(MONO)
    assert plain.lr_mult == () and plain.frozen_until == ()


def test_pose_lr_needs_temporal_frames():
    with pytest.raises(ConfigError, match=r"pose_lr is the pose network's rate: it needs frame_ids"):
        load_options(KittiTeacher, {"pose_lr": 1.0e-3}, "kitti.train.teacher")
