"""Pose evaluation: ATE / RE against hand-computed values (monodepth2's evaluate_pose.py and
SC-Depth's test_pose.py), the odometry files, the demo export and the pose network's pair order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workflow_scripts.export_odometry import main as export_odometry
from workflow_scripts.kitti.pose_eval import (
    check_pose_count,
    compute_ate,
    evaluate_sequence,
    first_from_cams,
    first_from_frames,
    monodepth2_track,
    read_poses,
    relative_poses,
    rotation_error,
    sequence_images,
    snippet_starts,
    write_poses,
)
from workflow_scripts.kitti.pose_predict import predict_relative_poses, predict_sequence_poses
from workflow_scripts.util import InputDataError


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def random_poses(n: int, seed: int = 0) -> np.ndarray:
    """Absolute poses first_from_cam (n, 4, 4): forward motion with random turns."""
    rng = np.random.default_rng(seed)
    out = [np.eye(4)]
    for _ in range(n - 1):
        axis = rng.normal(size=3)
        angle = rng.uniform(0, 0.1)
        K = np.cross(np.eye(3), axis / np.linalg.norm(axis))
        R = np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K
        out.append(out[-1] @ pose(R, rng.normal([0, 0, 1.0], 0.2)))
    return np.stack(out)


def scaled(rel: np.ndarray, factor: float) -> np.ndarray:
    out = rel.copy()
    out[:, :3, 3] *= factor
    return out


def test_ate_is_zero_for_the_truth_at_another_scale():
    gt = np.array([[0, 0, 0], [0.1, 0, 1], [0.3, 0.1, 2.1]])
    err, scale = compute_ate(gt, 3 * gt)
    assert err == pytest.approx(0, abs=1e-12) and scale == pytest.approx(1 / 3)


def test_ate_of_a_known_offset_by_hand():
    gt = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2.0]])
    pred = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 2.0]])
    err, scale = compute_ate(gt, pred)
    # s = (1 + 4) / (1 + 1 + 4) = 5/6; errors (5/6, 0, -1/6) and (0, 0, -1/3): sum of squares 30/36
    assert scale == pytest.approx(5 / 6)
    assert err == pytest.approx(np.sqrt(30 / 36) / 3)  # sqrt(sum) / n_frames, as monodepth2
    # the first frames are aligned before the scale: a shifted prediction scores the same
    assert compute_ate(gt, pred + 7.0)[0] == pytest.approx(err)


def test_identity_baseline_by_hand():
    """1 m per frame along z, no motion predicted: scale 0, ATE = sqrt(sum of squared distances
    from the snippet's first frame) / 5 = sqrt(0 + 1 + 4 + 9 + 16) / 5, no rotation error."""
    gt = relative_poses(np.stack([pose(np.eye(3), [0, 0, k]) for k in range(5)]))
    ident = np.tile(np.eye(4), (4, 1, 1))
    for protocol in ("monodepth2", "sc_depth"):
        e = evaluate_sequence(gt, ident, 5, protocol)
        assert e["ate"][0] == pytest.approx(np.sqrt(30) / 5)
        assert e["scale"][0] == 0 and e["re"][0] == pytest.approx(0, abs=1e-12)


def test_rotation_error_by_hand():
    """Turning theta per frame about y, predicted without turning: the snippet's frames are off by
    0, theta, ..., 4 theta; RE is their mean 2 theta (rad)."""
    theta = 0.05
    gt = relative_poses(np.stack([pose(rot_y(k * theta), [0, 0, k]) for k in range(5)]))
    pred = np.stack([pose(np.eye(3), T[:3, 3]) for T in gt])
    assert evaluate_sequence(gt, pred, 5, "sc_depth")["re"][0] == pytest.approx(2 * theta)
    g = first_from_frames(gt)
    assert rotation_error(g[:, :3, :3], g[:, :3, :3]) == pytest.approx(0, abs=1e-7)


@pytest.mark.parametrize("protocol", ["monodepth2", "sc_depth"])
@pytest.mark.parametrize("factor", [0.01, 0.3, 5.4, 40.0])
def test_scaling_the_prediction_leaves_the_errors_unchanged(protocol, factor):
    gt = relative_poses(random_poses(12, seed=1))
    pred = relative_poses(random_poses(12, seed=2))
    base = evaluate_sequence(gt, pred, 5, protocol)
    other = evaluate_sequence(gt, scaled(pred, factor), 5, protocol)
    np.testing.assert_allclose(other["ate"], base["ate"], rtol=1e-9)
    np.testing.assert_allclose(other["re"], base["re"], rtol=1e-9)
    np.testing.assert_allclose(other["scale"] * factor, base["scale"], rtol=1e-9)
    assert np.all(evaluate_sequence(gt, scaled(gt, 1 / factor), 5, protocol)["ate"] < 1e-9)


def test_snippets_of_both_protocols():
    # monodepth2: one from every frame but the last, shortened at the end; SC-Depth: full ones
    assert snippet_starts(7, 5, "monodepth2") == [(0, 5), (1, 6), (2, 7), (3, 7), (4, 7), (5, 7)]
    assert snippet_starts(7, 5, "sc_depth") == [(0, 5), (1, 6), (2, 7)]
    with pytest.raises(ValueError, match="fewer than one 5-frame snippet"):
        evaluate_sequence(np.tile(np.eye(4), (2, 1, 1)), np.tile(np.eye(4), (2, 1, 1)), 5, "sc_depth")


def test_monodepth2_tracks_equal_true_positions_without_rotation():
    """monodepth2's dump_xyz multiplies next_from_this in order: without rotation its track is the
    negated trajectory, so both protocols give the same ATE on the full snippets."""
    rng = np.random.default_rng(3)
    abs_ = np.stack([pose(np.eye(3), p) for p in np.cumsum(rng.normal(size=(9, 3)), 0)])
    abs_ = np.linalg.inv(abs_[0])[None] @ abs_
    gt, pred = relative_poses(abs_), scaled(relative_poses(abs_), 2.0)
    pred[:, :3, 3] += rng.normal(scale=0.3, size=(len(pred), 3))
    np.testing.assert_allclose(monodepth2_track(gt), -abs_[:, :3, 3], atol=1e-12)
    md2, sc = evaluate_sequence(gt, pred, 5, "monodepth2"), evaluate_sequence(gt, pred, 5, "sc_depth")
    np.testing.assert_allclose(md2["ate"][: len(sc["ate"])], sc["ate"], rtol=1e-9)


def test_first_from_frames_recovers_the_absolute_poses():
    abs_ = random_poses(6)
    np.testing.assert_allclose(first_from_frames(relative_poses(abs_)), abs_, atol=1e-12)


def test_pose_file_round_trip(tmp_path):
    abs_ = random_poses(20, seed=4)
    write_poses(tmp_path / "07.txt", abs_)
    assert len((tmp_path / "07.txt").read_text().splitlines()) == 20
    np.testing.assert_allclose(read_poses(tmp_path / "07.txt"), abs_, atol=1e-8)


@pytest.mark.parametrize(("line", "problem"), [
    ("1 0 0 0 0 1 0 0 0 0 1", "line 2 has 11 values"),
    ("1 0 0 0 0 1 0 0 0 0 1 x", "line 2 is not a list of numbers"),
    ("1 0 0 0 0 1 0 0 0 0 1 nan", "not 12 finite numbers"),
    ("2 0 0 0 0 1 0 0 0 0 1 0", "line 2: the left 3x3 block is not a rotation"),
])
def test_a_malformed_pose_line_names_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "poses" / "03.txt"
    path.parent.mkdir()
    path.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n" + line + "\n")
    with pytest.raises(InputDataError, match=problem) as err:
        read_poses(path)
    assert "03.txt" in str(err.value) and "12 numbers" in str(err.value)


def make_sequence(root, seq: str, n_images: int, n_poses: int, size=(40, 104)) -> None:
    """A small odometry sequence: textured frames shifting right, straight-line poses."""
    import cv2

    folder = root / "sequences" / seq / "image_2"
    folder.mkdir(parents=True)
    base = np.random.default_rng(0).integers(0, 255, (size[0], size[1] + 20, 3), dtype=np.uint8)
    for i in range(n_images):
        cv2.imwrite(str(folder / f"{i:06d}.png"), base[:, i : i + size[1]])
    write_poses(root / "poses" / f"{seq}.txt", np.stack([pose(np.eye(3), [0, 0, k]) for k in range(n_poses)]))


def test_fewer_poses_than_images_is_an_error_naming_the_pose_file(tmp_path):
    make_sequence(tmp_path, "05", n_images=6, n_poses=4)
    images = sequence_images(tmp_path, "05")
    with pytest.raises(InputDataError, match="has 4 poses for 6 images .*fewer poses than images") as err:
        check_pose_count(tmp_path / "poses" / "05.txt", 4, len(images), images[0].parent)
    assert "05.txt" in str(err.value)
    # predict_pose checks it before loading the network
    with pytest.raises(InputDataError, match="fewer poses than images"):
        predict_sequence_poses(tmp_path / "no_model.pt", "finetune", tmp_path, "05", tmp_path / "out.npz")


def test_missing_image_folder_and_frame_gap_are_errors(tmp_path):
    with pytest.raises(InputDataError, match="image_2: image folder not found.*odometry_root"):
        sequence_images(tmp_path, "09")
    make_sequence(tmp_path, "01", n_images=4, n_poses=4)
    (tmp_path / "sequences" / "01" / "image_2" / "000002.png").unlink()
    with pytest.raises(InputDataError, match="frame 2 is missing"):
        sequence_images(tmp_path, "01")


class ShiftPoseNet(nn.Module):
    """A stand-in pose network: translation x = mean(b) - mean(a), so the pair order shows."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        t = (b.mean((1, 2, 3)) - a.mean((1, 2, 3)))[:, None]
        return torch.cat([torch.zeros(len(a), 3), t, torch.zeros(len(a), 2)], 1)

    def to_matrix(self, vec: torch.Tensor) -> torch.Tensor:
        T = torch.eye(4).repeat(len(vec), 1, 1)
        T[:, :3, 3] = vec[:, 3:]
        return T


def test_pairs_are_fed_in_temporal_order_without_inverse(tmp_path):
    import cv2

    folder = tmp_path / "img"
    folder.mkdir()
    paths = []
    for i, v in enumerate([0, 51, 102, 204]):  # brightness 0, 0.2, 0.4, 0.8
        paths.append(folder / f"{i:06d}.png")
        cv2.imwrite(str(paths[-1]), np.full((16, 32, 3), v, np.uint8))
    rel, vec = predict_relative_poses(ShiftPoseNet(), paths, (8, 16), torch.device("cpu"), batch_size=2)
    assert rel.shape == (3, 4, 4) and vec.shape == (3, 6)
    np.testing.assert_allclose(rel[:, 0, 3], [0.2, 0.2, 0.4], atol=1e-6)  # net(frame k, frame k+1)


def test_demo_export_writes_the_odometry_layout(tmp_path):
    import cv2

    drive = tmp_path / "raw" / "2011_01_02" / "2011_01_02_drive_0003_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "demo_gt").mkdir()
    for i in range(3):
        cv2.imwrite(str(drive / "image_02" / "data" / f"{i:010d}.png"), np.full((8, 16, 3), 10 * i, np.uint8))
    world_from_cam = np.stack([pose(rot_y(0.1 * k), [5, 1, 2 + k]) for k in range(3)])
    np.savez(drive / "demo_gt" / "poses.npz", cam2_from_world=np.linalg.inv(world_from_cam),
             times=np.array([10.0, 10.1, 10.2]))
    names = export_odometry(tmp_path / "raw", ["2011_01_02/2011_01_02_drive_0003_sync"], tmp_path / "odom")
    assert names == {"2011_01_02/2011_01_02_drive_0003_sync": "00"}
    assert len(sequence_images(tmp_path / "odom", "00")) == 3
    poses = read_poses(tmp_path / "odom" / "poses" / "00.txt")
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)
    np.testing.assert_allclose(poses, np.linalg.inv(world_from_cam[0]) @ world_from_cam, atol=1e-8)
    np.testing.assert_allclose(first_from_cams(np.linalg.inv(world_from_cam)), poses, atol=1e-8)
    times = np.loadtxt(tmp_path / "odom" / "sequences" / "00" / "times.txt")
    np.testing.assert_allclose(times, [0, 0.1, 0.2], atol=1e-9)
    # a demo drive with fewer poses than images names its poses.npz
    np.savez(drive / "demo_gt" / "poses.npz", cam2_from_world=np.linalg.inv(world_from_cam[:2]),
             times=np.array([10.0, 10.1]))
    with pytest.raises(InputDataError, match="poses.npz: has 2 poses for 3 images"):
        export_odometry(tmp_path / "raw", ["2011_01_02/2011_01_02_drive_0003_sync"], tmp_path / "odom2")
    assert not (tmp_path / "odom2").exists()


def save_stage(path, with_pose: bool) -> None:
    """A saved KITTI model at 64x128, with or without a (random) pose network."""
    from models.model_file import save_model
    from models.networks.spec import NetworkSpec, build_pose_net

    torch.manual_seed(0)
    spec = NetworkSpec()
    nets = nn.ModuleDict({"depth": spec.build()})
    extra = {}
    if with_pose:
        nets["pose"] = build_pose_net(18, "axis_angle")
        extra["pose"] = {"layers": 18, "rotation": "axis_angle"}
    save_model(nets, path, branch="kitti", stage="finetune" if with_pose else "student", network=spec,
               size=(64, 128), steps=1, **extra)


def test_predict_pose_with_a_saved_pose_network(tmp_path):
    make_sequence(tmp_path, "02", n_images=5, n_poses=5)
    save_stage(tmp_path / "model.pt", with_pose=True)
    out = tmp_path / "pose" / "02.npz"
    rel = predict_sequence_poses(tmp_path / "model.pt", "finetune", tmp_path, "02", out)
    with np.load(tmp_path / "pose" / "02.npz") as data:
        assert data["next_from_this"].shape == (4, 4, 4) and data["vectors"].shape == (4, 6)
        np.testing.assert_array_equal(data["frames"], np.arange(5))
        np.testing.assert_allclose(data["next_from_this"], rel)
    rotations = rel[:, :3, :3]
    identity = np.broadcast_to(np.eye(3), (4, 3, 3))
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), identity, atol=1e-5)


def test_a_stage_without_pose_network_is_an_error_naming_the_model(tmp_path):
    make_sequence(tmp_path, "02", n_images=3, n_poses=3)
    save_stage(tmp_path / "student.pt", with_pose=False)
    message = "student.pt: stage student has no pose network.*kitti.pose_eval.stages"
    with pytest.raises(InputDataError, match=message):
        predict_sequence_poses(tmp_path / "student.pt", "student", tmp_path, "02", tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()
