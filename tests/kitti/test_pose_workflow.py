"""The pose evaluation in the tiny demo run (conftest.tiny_demo_run): the held-out test drive is
exported as odometry sequence 00 and results/kitti_pose_eval.csv has a row per stage with a pose
network and the identity baseline, with finite errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.kitti.pose_eval import read_poses, sequence_images


@pytest.mark.slow
def test_tiny_demo_writes_the_pose_table(tiny_demo_run):
    tiny_demo_run.check()
    folder = tiny_demo_run.folder
    odometry = folder / "results" / "kitti" / "odometry"
    assert (odometry / "drives.txt").read_text().split() == ["00", "2011_01_02/2011_01_02_drive_0003_sync"]
    n_frames = len(sequence_images(odometry, "00"))
    poses = read_poses(odometry / "poses" / "00.txt")
    assert len(poses) == n_frames == 3
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)

    table = pd.read_csv(folder / "results" / "kitti_pose_eval.csv", dtype={"sequence": str})
    # tests/configs/tiny.yaml trains the fine-tune's masking control: both fine-tunes have a pose network
    assert table["stage"].tolist() == ["finetune", "finetune_unmasked", "identity"]
    assert set(table["sequence"]) == {"00"} and set(table["protocol"]) == {"monodepth2"}
    assert (table["n_frames"] == 3).all() and (table["n_snippets"] == 2).all()  # monodepth2: from every frame
    metrics = table[["ate_mean", "ate_std", "re_mean", "re_std", "scale_median"]].to_numpy()
    assert np.isfinite(metrics).all()
    identity = table.set_index("stage").loc["identity"]
    assert identity["ate_mean"] > 0 and identity["scale_median"] == 0
    for stage in ("finetune", "finetune_unmasked"):
        with np.load(folder / "results" / "kitti" / "pose" / stage / "00.npz") as data:
            assert data["next_from_this"].shape == (2, 4, 4)
