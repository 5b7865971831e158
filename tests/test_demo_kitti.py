"""The demo KITTI drives are exact: formats, LiDAR vs depth, stereo and temporal warps."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from workflow_scripts.demo import kitti_demo
from workflow_scripts.kitti import calib as kc
from workflow_scripts.kitti import raw


def _drive(demo, date="2011_01_01", drive="0001") -> Path:
    return raw.drive_dir(demo["root"], date, drive)


def _rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


def _gt_depth(drive: Path, cam: int, i: int) -> np.ndarray:
    png = cv2.imread(
        str(drive / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{raw.frame_name(i)}.png"),
        cv2.IMREAD_UNCHANGED,
    )
    assert png.dtype == np.uint16
    return png.astype(np.float64) / kitti_demo.DEPTH_PNG_SCALE


def test_layout_and_file_formats(kitti_demo_small):
    root = kitti_demo_small["root"]
    for date, (h, w) in kitti_demo_small["config"].dates.items():
        for name in (kc.CAM_TO_CAM, kc.VELO_TO_CAM, kc.IMU_TO_VELO):
            assert (root / date / name).is_file()
        c2c = kc.read_calib_file(root / date / kc.CAM_TO_CAM)
        for key in ("S_rect_02", "R_rect_00", "P_rect_02", "P_rect_03", "K_02", "D_02", "T_03"):
            assert isinstance(c2c[key], np.ndarray), key
        assert kc.load_rig(root / date).image_size[2] == (h, w)
    for d in kitti_demo_small["config"].drives:
        drive = raw.drive_dir(root, d.date, d.drive)
        h, w = kitti_demo_small["config"].dates[d.date]
        for sub in ("image_02", "image_03"):
            names = sorted(p.name for p in (drive / sub / "data").iterdir())
            assert names == [f"{i:010d}.png" for i in range(d.frames)]
            img = cv2.imread(str(drive / sub / "data" / names[0]), cv2.IMREAD_UNCHANGED)
            assert img.shape == (h, w, 3) and img.dtype == np.uint8
        scans = sorted((drive / "velodyne_points" / "data").iterdir())
        assert [p.name for p in scans] == [f"{i:010d}.bin" for i in range(d.frames)]
        assert all(p.stat().st_size % 16 == 0 and p.stat().st_size > 16 * 10000 for p in scans)
        for sub in ("image_02", "image_03", "velodyne_points"):
            lines = (drive / sub / "timestamps.txt").read_text().splitlines()
            assert len(lines) == d.frames
            assert re.fullmatch(r"2011-01-01 \d\d:\d\d:\d\d\.\d{9}", lines[0])
        np.testing.assert_allclose(
            np.diff(raw.read_timestamps(drive / "image_02" / "timestamps.txt")), 0.1, atol=1e-6
        )
        poses = np.load(drive / "demo_gt" / "poses.npz")
        assert poses["cam2_from_world"].shape == (d.frames, 4, 4)


def test_stereo_rig_matches_config(kitti_demo_small):
    for date in kitti_demo_small["config"].dates:
        rig = kc.load_rig(kitti_demo_small["root"] / date)
        assert rig.baseline() == pytest.approx(0.54, abs=1e-6)
        np.testing.assert_allclose(rig.cam_offset(2), [0.06, 0, 0], atol=1e-7)
        assert rig.P_rect[2][0, 0] == pytest.approx(721.5377 * rig.image_size[2][1] / 1242, rel=1e-6)
    poses = np.load(_drive(kitti_demo_small) / "demo_gt" / "poses.npz")
    right_from_left = poses["cam3_from_world"][0] @ np.linalg.inv(poses["cam2_from_world"][0])
    np.testing.assert_allclose(right_from_left, np.diag([1.0, 1, 1, 1]) + np.eye(4, k=3) * -0.54, atol=1e-6)


def _lidar_vs_depth(
    drive: Path, rig: kc.KittiRig, i: int, pixel_offset: float = 1.0, rect: bool = True
) -> np.ndarray:
    """Errors (m) between LiDAR camera-z and the GT depth at the projected position, for points
    whose 2x2 depth neighbourhood is one smooth surface (inverse depth is bilinear on planes)."""
    pts = raw.read_velodyne(raw.velodyne_path(drive, i))
    X = np.c_[pts[:, :3], np.ones(len(pts))]
    X = X[X[:, 0] >= 0]
    P = rig.velo_to_image(2) if rect else rig.P_rect[2] @ rig.velo_to_cam
    p = X @ P.T
    u, v, z = p[:, 0] / p[:, 2] - pixel_offset, p[:, 1] / p[:, 2] - pixel_offset, p[:, 2]
    gt = _gt_depth(drive, 2, i)
    h, w = gt.shape
    m = (u >= 0) & (v >= 0) & (u < w - 1) & (v < h - 1)
    u, v, z = u[m], v[m], z[m]
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    q = np.stack([gt[v0, u0], gt[v0, u0 + 1], gt[v0 + 1, u0], gt[v0 + 1, u0 + 1]])
    smooth = (q.min(0) > 0) & (q.max(0) / np.maximum(q.min(0), 1e-9) < 1.05)
    inv = 1.0 / np.where(q > 0, q, 1.0)
    inv_d = inv[0] * (1 - fu) * (1 - fv) + inv[1] * fu * (1 - fv) + inv[2] * (1 - fu) * fv + inv[3] * fu * fv
    return np.abs(1.0 / inv_d - z)[smooth]


def test_lidar_lands_on_ground_truth_depth(kitti_demo_small):
    drive = _drive(kitti_demo_small)
    rig = kc.load_rig(kitti_demo_small["root"] / "2011_01_01")
    for i in (0, 4):
        err = _lidar_vs_depth(drive, rig, i)
        assert err.size > 5000
        # the rest are points the camera cannot see (the LiDAR sits 27 cm behind and 8 cm above)
        assert np.mean(err < 0.01) > 0.97
        assert np.median(err) < 0.002  # the depth PNG quantum is 1/256 m
    # a wrong convention (0-based pixels) or a missing rectification is clearly detected
    assert np.median(_lidar_vs_depth(drive, rig, 0, pixel_offset=0.0)) > 5 * np.median(
        _lidar_vs_depth(drive, rig, 0)
    )
    assert np.mean(_lidar_vs_depth(drive, rig, 0, rect=False) < 0.01) < 0.5


def _warp(src: np.ndarray, depth_tgt: np.ndarray, K: np.ndarray, src_from_tgt: np.ndarray):
    """Inverse-warp ``src`` into the target view; returns the warped image, the projected
    source pixel coordinates and the depth of the target points in the source camera."""
    h, w = depth_tgt.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    X = rays * depth_tgt[..., None]
    Xs = X @ src_from_tgt[:3, :3].T + src_from_tgt[:3, 3]
    z = Xs[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        us = np.where(z > 0.1, K[0, 0] * Xs[..., 0] / z + K[0, 2], -1e4)
        vs = np.where(z > 0.1, K[1, 1] * Xs[..., 1] / z + K[1, 2], -1e4)
    us, vs = np.clip(us, -1e4, 1e4).astype(np.float32), np.clip(vs, -1e4, 1e4).astype(np.float32)
    warped = cv2.remap(
        src, us, vs, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(-1, -1, -1)
    )
    return warped, us, vs, z


def _covisible(depth_tgt, depth_src, K, src_from_tgt) -> np.ndarray:
    """Target pixels whose true 3-D point is visible in the source view (GT depth, GT pose)."""
    warped, us, vs, z = _warp(np.zeros(depth_tgt.shape + (3,), np.float32), depth_tgt, K, src_from_tgt)
    d_src = cv2.remap(depth_src.astype(np.float32), us, vs, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    visible = (warped[..., 0] >= 0) & (depth_tgt > 0) & (np.abs(d_src - z) < 0.02 * z)
    assert visible.mean() > 0.4
    return visible


def _photometric(tgt, src, depth_tgt, K, src_from_tgt, mask) -> float:
    """Mean |I_t - warp(I_s)| over ``mask`` (pixels falling outside the source count as 1)."""
    warped, *_ = _warp(src, depth_tgt, K, src_from_tgt)
    err = np.where(warped >= 0, np.abs(warped - tgt), 1.0)
    return float(err[mask].mean())


def test_right_image_warped_with_gt_depth_reproduces_left(kitti_demo_small):
    drive = _drive(kitti_demo_small)
    rig = kc.load_rig(kitti_demo_small["root"] / "2011_01_01")
    K = rig.K(2)
    left, right = _rgb(raw.image_path(drive, 2, 2)), _rgb(raw.image_path(drive, 3, 2))
    d_left, d_right = _gt_depth(drive, 2, 2), _gt_depth(drive, 3, 2)
    right_from_left = np.eye(4)
    right_from_left[0, 3] = -rig.baseline()
    mask = _covisible(d_left, d_right, K, right_from_left)
    good = _photometric(left, right, d_left, K, right_from_left, mask)
    wrong = [_photometric(left, right, d_left * s, K, right_from_left, mask) for s in (0.9, 1.1)]
    assert good < 0.012  # sensor noise of both images (1 level) + interpolation
    assert min(wrong) > 3 * good


def test_next_frame_warped_with_gt_pose_reproduces_frame(kitti_demo_small):
    drive = _drive(kitti_demo_small)
    K = kc.load_rig(kitti_demo_small["root"] / "2011_01_01").K(2)
    poses = np.load(drive / "demo_gt" / "poses.npz")["cam2_from_world"]
    tgt, src = _rgb(raw.image_path(drive, 2, 2)), _rgb(raw.image_path(drive, 2, 3))
    d_tgt, d_src = _gt_depth(drive, 2, 2), _gt_depth(drive, 2, 3)
    src_from_tgt = poses[3] @ np.linalg.inv(poses[2])
    assert np.linalg.norm(src_from_tgt[:3, 3]) > 0.5  # the car moved
    mask = _covisible(d_tgt, d_src, K, src_from_tgt)
    good = _photometric(tgt, src, d_tgt, K, src_from_tgt, mask)
    bumped = src_from_tgt.copy()
    bumped[:3, 3] += [0.05, 0.0, 0.15]
    assert good < 0.02
    assert _photometric(tgt, src, d_tgt, K, bumped, mask) > 2.5 * good


def test_generation_is_deterministic(tmp_path, kitti_demo_small):
    """Same config and seed -> byte-identical files, whatever the number of workers."""
    tiny = kitti_demo.KittiDemoConfig(
        dates={"2011_01_02": kitti_demo_small["config"].dates["2011_01_02"]},
        drives=(kitti_demo.DemoDrive(date="2011_01_02", drive="0003", frames=2, speed=9.0, stop=False),),
        lidar_azimuth_steps=kitti_demo_small["config"].lidar_azimuth_steps,
    )
    kitti_demo.generate(tmp_path / "a", tiny, seed=5, workers=1)
    kitti_demo.generate(tmp_path / "b", tiny, seed=5, workers=2)
    a, b = (raw.drive_dir(tmp_path / x, "2011_01_02", "0003") for x in "ab")
    for rel in (
        "image_02/data/0000000001.png",
        "velodyne_points/data/0000000001.bin",
        "proj_depth/groundtruth/image_03/0000000000.png",
        "demo_gt/poses.npz",
    ):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    # the calibration depends only on the date's image size
    assert (a.parent / kc.CAM_TO_CAM).read_text() == (
        kitti_demo_small["root"] / "2011_01_02" / kc.CAM_TO_CAM
    ).read_text()
    kitti_demo.generate(tmp_path / "c", tiny, seed=6, workers=1)
    c = raw.drive_dir(tmp_path / "c", "2011_01_02", "0003")
    assert (a / "image_02/data/0000000001.png").read_bytes() != (
        c / "image_02/data/0000000001.png"
    ).read_bytes()


def test_stop_drive_stands_still():
    from workflow_scripts.demo.kitti_scene import trajectory

    poses, _ = trajectory(np.random.default_rng(0), 60, 7.0, stop=True)
    step = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert (step < 1e-9).sum() >= 8  # about a second standing still
    assert step[:5].min() > 0.5 and step[-5:].min() > 0.5


def _world_points(drive: Path, rig: kc.KittiRig, i: int) -> tuple[np.ndarray, np.ndarray]:
    """World points (H, W, 3) of camera 2's pixels at frame ``i`` (GT depth) and the depth."""
    depth = _gt_depth(drive, 2, i)
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([u + 1.0, v + 1.0, np.ones_like(u)], -1) @ np.linalg.inv(rig.K(2, zero_based=False)).T
    cam = rays * depth[..., None]
    world_from_cam = np.linalg.inv(np.load(drive / "demo_gt" / "poses.npz")["cam2_from_world"][i])
    return cam @ world_from_cam[:3, :3].T + world_from_cam[:3, 3], depth


def _inside(points: np.ndarray, boxes: np.ndarray, margin: float) -> np.ndarray:
    """(n,) whether each point (n, 3) lies in any box (m, 2, 3) grown by ``margin`` (m)."""
    lo, hi = boxes[:, 0] - margin, boxes[:, 1] + margin
    return ((points[:, None] >= lo[None]) & (points[:, None] <= hi[None])).all(-1).any(-1)


def test_labels_agree_with_geometry(kitti_demo_traffic):
    """Car pixels of the label images are exactly where the depth puts a point on a car (parked
    or moving at that frame), and no other pixel is; the label files are Cityscapes labelIds."""
    from workflow_scripts.kitti import cityscapes as cs

    drive = _drive(kitti_demo_traffic)
    rig = kc.load_rig(kitti_demo_traffic["root"] / "2011_01_01")
    cars = np.load(drive / "demo_gt" / "cars.npz")
    kinds = np.array(cars["moving_kind"])
    assert cars["moving"].shape[:2] == (5, 14) and set(kinds) == {"lead", "slow", "oncoming", "crossing"}
    root = kitti_demo_traffic["root"] / kitti_demo.CITYSCAPES
    pairs = cs.find_pairs(root, "train")
    assert len(pairs) == 5  # 5 frames, left images hard-linked
    for i in (0, 4):
        image, label_png = cs.cityscapes_paths(root, "train", drive.name, f"{drive.name}_{raw.frame_name(i)}")
        assert image.samefile(raw.image_path(drive, 2, i))
        label = cv2.imread(str(label_png), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.shape == (375, 1242)
        points, depth = _world_points(drive, rig, i)
        boxes = np.concatenate([cars["parked"], cars["moving"][i]])
        car = label == cs.LABEL_IDS["car"]
        assert car.sum() > 2000
        assert np.all(label[depth == 0] == cs.LABEL_IDS["sky"])
        # 1/256 m depth quantisation at up to ~30 m: 2 cm of slack
        assert _inside(points[car & (depth > 0)], boxes, 0.02).all()
        surface = (depth > 0) & (depth < 60)
        lo, hi = boxes[:, 0] + 0.02, boxes[:, 1] - 0.02
        deep_inside = ((points[:, :, None] >= lo) & (points[:, :, None] <= hi)).all(-1).any(-1)
        assert not deep_inside[surface & ~car].any()
        # the lead car, the van and the crossing cars are seen
        for kind in ("lead", "slow", "crossing"):
            assert _inside(points[car], cars["moving"][i][kinds == kind], 0.02).sum() > 1000, kind
    # the LiDAR sees the cars where the cameras do, at the same instant
    err = _lidar_vs_depth(drive, rig, 4)
    assert err.size > 5000 and np.mean(err < 0.01) > 0.97
    poses = np.load(drive / "demo_gt" / "poses.npz")["cam2_from_world"]
    cam_dz = np.linalg.inv(poses[4])[2, 3] - np.linalg.inv(poses[0])[2, 3]
    lead, slow = list(kinds).index("lead"), list(kinds).index("slow")
    lead_dz, slow_dz = np.diff(cars["moving"][[0, 4]][:, [lead, slow], 0, 2], axis=0)[0]
    assert cam_dz > 2.5 and 0.8 * cam_dz - 1e-9 <= lead_dz <= 0.9 * cam_dz + 1e-9  # 80-90 % of its speed
    assert 0.3 * cam_dz - 1e-9 <= slow_dz <= 0.45 * cam_dz + 1e-9  # the van: 30-45 %
    # the van drives in the lane beside the camera's, off the focus of expansion
    cam_x = np.linalg.inv(poses[0])[0, 3]
    assert 1.4 < cam_x - cars["moving"][0, slow, :, 0].mean() < 2.4


def test_the_slow_van_is_added_without_changing_the_other_traffic():
    """demo.kitti.slow_van appends the van: the default demo's cars stay the same, draw for draw,
    and the van's image moves like a static object's 1.4-1.8x farther away."""
    from workflow_scripts.demo.kitti_scene import build_traffic

    cam_z = np.cumsum(np.full(30, 0.8))
    plain = build_traffic(np.random.default_rng(7), cam_z)
    with_van = build_traffic(np.random.default_rng(7), cam_z, slow_van=True)
    k = len(plain.boxes)
    assert with_van.kind[:k] == plain.kind and with_van.kind[k:] == ("slow", "slow")
    np.testing.assert_array_equal(with_van.boxes[:k], plain.boxes)
    np.testing.assert_array_equal(with_van.shift[:, :k], plain.shift)
    ratio = with_van.shift[-1, k, 2] / (cam_z[-1] - cam_z[0])  # r: its speed / the camera's
    assert 0.3 <= ratio <= 0.45 and 1.4 < 1 / (1 - ratio) < 1.85


def test_crossing_cars_cross_the_street_ahead_without_changing_the_other_traffic():
    """demo.kitti.crossing appends two cars that drive across the street, kerb to kerb, ahead
    of the camera: x only, 6-9 m/s, waiting before and stopped after; the rest of the traffic
    is the same draw for draw, and the camera never reaches them."""
    from workflow_scripts.demo.kitti_scene import CROSS_X, build_traffic

    cam_z = np.cumsum(np.full(32, 0.8))
    plain = build_traffic(np.random.default_rng(7), cam_z, slow_van=True)
    crossing = build_traffic(np.random.default_rng(7), cam_z, slow_van=True, crossing=True)
    k = len(plain.boxes)
    assert crossing.kind[:k] == plain.kind and crossing.kind[k:] == ("crossing",) * 4
    np.testing.assert_array_equal(crossing.boxes[:k], plain.boxes)
    np.testing.assert_array_equal(crossing.shift[:, :k], plain.shift)
    for j, side in ((k, 1.0), (k + 2, -1.0)):  # body boxes: the first from the left, then the right
        body, shift = crossing.boxes[j], crossing.shift[:, j]
        np.testing.assert_array_equal(shift[:, 1:], 0.0)  # across the street only
        np.testing.assert_array_equal(crossing.shift[:, j + 1], shift)  # the cabin moves with it
        assert body[1, 0] - body[0, 0] == pytest.approx(4.2)  # seen side-on: its length along x
        assert body[:, 0].mean() == pytest.approx(-side * CROSS_X)
        step = np.abs(np.diff(shift[:, 0]))
        moving = step > 1e-9
        start = int(np.argmax(moving))  # it waits at its kerb, then drives without stopping
        assert 0.6 - 1e-9 <= step[moving].max() <= 0.9 + 1e-9 and moving[start:].sum() >= moving.sum() - 1
        assert np.all(side * shift[:, 0] >= -1e-9) and np.all(side * shift[:, 0] <= 2 * CROSS_X + 1e-9)
        assert 22.0 <= body[0, 2] - cam_z[start] <= 28.0  # 22-28 m ahead when it sets off
        # the camera (x = 1.8 +- 0.35 m) never drives into it: near it, the car is off its lane
        near = body[0, 2] - cam_z < 8.0
        x_lo, x_hi = body[0, 0] + shift[near, 0], body[1, 0] + shift[near, 0]
        assert np.all((x_lo > 2.6) | (x_hi < 1.0))
        # a frame's motion is 15-20 % of its length: SGDepth's warped-segmentation IoU sees it
        assert 0.14 <= step[moving].max() / 4.2 <= 0.22
