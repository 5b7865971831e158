"""Point clouds from depth: exact back-projection and fusion geometry, PLY round trips, the
constant baseline and the depth metrics against the SfM sparse points."""

from __future__ import annotations

import cv2
import numpy as np
import open3d as o3d
import pytest
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.evaluate import constant_prediction, sparse_depth_metrics
from workflow_scripts.endo.pointcloud import (
    PointCloudOptions,
    PredictedDepth,
    backproject,
    export_clouds,
    load_predicted_depth,
    save_predicted_depth,
)
from workflow_scripts.util import InputDataError
from workflow_scripts.util.ply import read_ply, write_ply


def read_ply_points(path):
    ply = read_ply(path)
    return ply.vertices, ply.colors

H, W = 6, 8
K = np.array([[10.0, 0.0, 3.5], [0.0, 12.0, 2.5], [0.0, 0.0, 1.0]])


def test_backproject_exact_points():
    depth = np.full((H, W), 2.0)
    depth[0, 0] = 4.0
    valid = np.ones((H, W), bool)
    valid[5, 7] = False
    pts, px = backproject(depth, K, valid)
    assert len(pts) == H * W - 1
    assert np.allclose(pts[0], [(0 - 3.5) / 10 * 4, (0 - 2.5) / 12 * 4, 4.0])
    i = np.flatnonzero((px[:, 0] == 3) & (px[:, 1] == 5))[0]  # u = 3, v = 5
    assert np.allclose(pts[i], [(3 - 3.5) / 10 * 2, (5 - 2.5) / 12 * 2, 2.0])
    # re-projection gives the pixel back
    uv = pts @ K.T
    assert np.allclose(uv[:, :2] / uv[:, 2:], px)
    sub, _ = backproject(depth, K, valid, stride=2)
    assert len(sub) == (H // 2) * (W // 2)


def _scene(tmp_path, n=2):
    """A camera looking at the world plane Z = 5 (optical axis along +Z, rotated about it),
    at centres (1, 2, 0) and (1.5, 2, 1): constant depth 5 and 4."""
    frames = tmp_path / "frames"
    frames.mkdir()
    cam_from_world = np.tile(np.eye(4), (n, 1, 1))
    centres = np.array([[1.0, 2.0, 0.0], [1.5, 2.0, 1.0]])[:n]
    R = Rotation.from_euler("z", 90, degrees=True).as_matrix()  # camera x = world y
    rng = np.random.default_rng(0)
    for v in range(n):
        cam_from_world[v, :3, :3] = R.T
        cam_from_world[v, :3, 3] = -R.T @ centres[v]
        cv2.imwrite(str(frames / f"{10 + v:08d}.jpg"), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    sfm = {
        "view_indexes": np.array([10, 11])[:n],
        "crop": np.array([0, H, 0, W]),
        "downsampling": np.float64(1.0),
        "cam_from_world": cam_from_world,
        "input_size": np.array([H, W]),
        "mask": np.full((H, W), 255, np.uint8),
        "K": K,
        "sparse_view": np.array([0, 0, 1], np.int32),
        "sparse_xy": np.array([[1, 1], [2, 3], [4, 4]], np.int32),
        "sparse_z": np.array([5.0, 5.0, 4.0], np.float32),
    }
    depth = np.stack([np.full((H, W), 5.0 - c[2], np.float32) for c in centres])
    pred = PredictedDepth(depth=depth, frame_indexes=np.array([10, 11])[:n],
                          K=K, mask=np.ones((H, W), np.uint8))
    return sfm, pred, frames, centres, R


def test_fused_cloud_lies_on_the_plane(tmp_path):
    sfm, pred, frames, centres, R = _scene(tmp_path)
    pred.frame_indexes = np.array([10, 11])
    opts = PointCloudOptions(frame_plys=True, pixel_stride=1, voxel=0.0)
    info = export_clouds(pred, sfm, frames, tmp_path / "fused.ply", tmp_path / "plys", opts)
    pts, rgb = read_ply_points(tmp_path / "fused.ply")
    assert info["points"] == len(pts) == 2 * H * W and rgb.dtype == np.uint8
    assert np.allclose(pts[:, 2], 5.0, atol=1e-5)  # world plane Z = 5, exactly
    # pixel (u, v) of view 0 -> centre + R @ ((u - cx) / fx * 5, (v - cy) / fy * 5, 5)
    u, v = 7, 0
    expected = centres[0] + R @ np.array([(u - 3.5) / 10 * 5, (v - 2.5) / 12 * 5, 5.0])
    assert np.allclose(pts[v * W + u], expected, atol=1e-5)
    # per-frame PLYs: camera frame, colour = the frame's RGB at the pixel
    cam, cam_rgb = read_ply_points(tmp_path / "plys" / "00000011.ply")
    assert np.allclose(cam[:, 2], 4.0)
    bgr = cv2.imread(str(frames / "00000011.jpg"))
    assert np.array_equal(cam_rgb[v * W + u], bgr[v, u, ::-1])
    # Open3D reads the same file
    o3 = o3d.io.read_point_cloud(str(tmp_path / "fused.ply"))
    assert len(o3.points) == len(pts) and o3.has_colors()


def test_sfm_median_frame_scaling(tmp_path):
    sfm, pred, frames, _, _ = _scene(tmp_path)
    pred.depth = pred.depth * np.array([3.0, 0.5], np.float32)[:, None, None]  # per-frame drift
    opts = PointCloudOptions(frame_plys=False, pixel_stride=1, voxel=0.0, frame_scaling="sfm_median")
    info = export_clouds(pred, sfm, frames, tmp_path / "fused.ply", None, opts)
    pts, _ = read_ply_points(tmp_path / "fused.ply")
    assert np.allclose(info["frame_scales"], [1 / 3, 2.0]) and np.allclose(pts[:, 2], 5.0, atol=1e-5)


def test_ply_roundtrip_and_bad_depth_file(tmp_path):
    pts = np.random.default_rng(1).normal(size=(50, 3))
    rgb = np.arange(150, dtype=np.uint8).reshape(50, 3)
    write_ply(tmp_path / "a.ply", pts, rgb, ["units: mm"])
    back, back_rgb = read_ply_points(tmp_path / "a.ply")
    assert np.allclose(back, pts.astype(np.float32)) and np.array_equal(back_rgb, rgb)
    np.savez(tmp_path / "depth.npz", depth=np.ones((2, 3, 4), np.float32))
    with pytest.raises(InputDataError, match=r"depth\.npz.*lacks the keys"):
        load_predicted_depth(tmp_path / "depth.npz")


def test_constant_baseline_and_sparse_metrics(tmp_path):
    sfm, _, _, _, _ = _scene(tmp_path)
    const = constant_prediction(sfm)
    assert const.depth.shape == (2, H, W) and np.allclose(const.depth[1], 4.0)
    save_predicted_depth(tmp_path / "c.npz", const)
    back = load_predicted_depth(tmp_path / "c.npz")
    assert np.array_equal(back.frame_indexes, [10, 11]) and back.mask.all()
    # oracle with a per-frame scale: median scaling removes it
    m = sparse_depth_metrics(PredictedDepth(const.depth * 7, const.frame_indexes, K, const.mask), sfm)
    assert m["abs_rel"] == pytest.approx(0.0) and m["delta1"] == 1.0 and m["sparse_samples"] == 3
    # one sample 2x too deep after scaling: abs_rel of that frame = mean(|d - z| / z)
    sfm["sparse_z"] = np.array([5.0, 10.0, 4.0], np.float32)  # frame 0 medians 7.5 vs constant 5
    m = sparse_depth_metrics(const, sfm)
    assert m["abs_rel"] == pytest.approx((0.5 * (2.5 / 5 + 2.5 / 10) + 0.0) / 2)
    assert m["delta1"] == pytest.approx((0.0 + 1.0) / 2)
