"""prepare_sfm_data pieces on synthetic inputs with hand-computed answers (the golden values of
the real example are in test_endo_realdata.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from endo_synthetic import synthetic_scene

from workflow_scripts.endo.sfm_data import (
    SfMDataOptions,
    clean_point_mask,
    crop_intrinsics,
    downsample_and_crop_mask,
    frame_sparse_points,
    global_scale,
    prepare,
    project_points,
    sanity_thresholds,
    smooth_visibility,
)
from workflow_scripts.endo.sparse import (
    load_sfm_data,
    relative_motion,
    sparse_depth,
    sparse_flow,
    write_sfm_data,
)


def test_crop_of_a_rectangle_mask():
    """Valid rows 10..109 (extent 99 -> +29 -> 128, start 10 - 14 = 0 clamped), cols 20..219
    (extent 199 -> +57 -> 256, start 20 - 28 -> 0)... with downsampling 1 and divide 64."""
    mask = np.zeros((200, 300), np.uint8)
    mask[10:110, 20:220] = 255
    cropped, crop = downsample_and_crop_mask(mask, 1.0, 64)
    assert crop == (0, 128, 0, 256) and cropped.shape == (128, 256)
    mask2 = np.zeros((400, 600), np.uint8)
    mask2[100:170, 200:300] = 255  # extent 69 -> 128 (inc 59, start 100 - 29); 99 -> 128 (inc 29)
    _, crop2 = downsample_and_crop_mask(mask2, 1.0, 64)
    assert crop2 == (71, 199, 186, 314)
    # exact multiple: the reference still adds a whole divisor (QUIRK kept)
    mask3 = np.zeros((400, 600), np.uint8)
    mask3[100:165, 200:265] = 255  # extent 64
    _, crop3 = downsample_and_crop_mask(mask3, 1.0, 64)
    assert crop3[1] - crop3[0] == 128


def test_crop_with_suggested_size_and_downsampling():
    mask = np.zeros((400, 800), np.uint8)
    mask[40:360, 100:700] = 255
    cropped, crop = downsample_and_crop_mask(mask, 2.0, 32, suggested_hw=(192, 320))
    assert cropped.shape == (192, 320) and crop[1] - crop[0] == 192 and crop[3] - crop[2] == 320
    assert 0 <= crop[0] and crop[1] <= 200 and 0 <= crop[2] and crop[3] <= 400
    with pytest.raises(ValueError, match="exceeds"):
        downsample_and_crop_mask(mask, 2.0, 32, suggested_hw=(256, 320))


def test_crop_never_leaves_the_image():
    """A mask filling 480 rows at d = 2.5 (192 rows): the reference would ask for 256 rows; we
    keep the largest multiple of the divisor that fits (documented deviation)."""
    mask = np.full((480, 640), 255, np.uint8)
    cropped, crop = downsample_and_crop_mask(mask, 2.5, 64)
    assert crop == (0, 192, 0, 256) and cropped.shape == (192, 256)
    low = np.zeros((240, 320), np.uint8)
    low[150:236, 100:200] = 255  # extent 85 -> 128 rows, which would end at 150 - 21 + 128 = 257
    _, crop = downsample_and_crop_mask(low, 1.0, 64)
    assert crop[:2] == (240 - 128, 240)  # shifted inside, same size
    assert cropped[0].min() == 255  # OpenCV's erode pads with the maximum: the frame edge stays valid


def test_crop_intrinsics_maps_pixels_like_the_reference():
    K = np.array([[677.171, 0, 872.127], [0, 677.171, 471.918], [0, 0, 1]])
    Kc = crop_intrinsics(K, 4.0, (11, 267, 88, 408))
    assert np.allclose(Kc, [[169.29275, 0, 130.03175], [0, 169.29275, 106.9795], [0, 0, 1]])


def test_smooth_visibility_matches_its_definition():
    rng = np.random.default_rng(0)
    V = (rng.random((50, 13)) < 0.2).astype(np.uint8)
    for overlap in (1, 3, 30):
        out = smooth_visibility(V, overlap)
        for i in range(13):
            assert np.array_equal(out[:, i], V[:, max(0, i - overlap) : min(13, i + overlap)].sum(1))


def test_global_scale():
    T = np.tile(np.eye(4), (3, 1, 1))
    T[:, :3, 3] = [[0, 0, 0], [3, 0, 0], [0, 4, 0]]  # translation extent (3, 4, 0) -> 5
    pts = np.array([[0, 0, 0], [1, 1, 1], [np.nan, 100, 0]])
    assert global_scale(T, pts) == pytest.approx(5.0)
    assert global_scale(T, pts * 10) == pytest.approx(np.sqrt(300))
    assert global_scale(T * 0 + np.eye(4), pts * 0.01) == 1.0  # never below 1


def test_sanity_thresholds_keep_the_mass_and_drop_far_values():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(50, 2, 1000), [5.0, 95.0, 100.0]])
    lo, hi = sanity_thresholds(values, 0.99)
    assert 5.0 < lo < 45 and 55 < hi < 95.0
    assert np.mean((values > lo) & (values < hi)) >= 0.985


def test_clean_points_remove_brightness_depth_outliers():
    """A uniformly lit, fronto-parallel plane at z = 4 seen by identical cameras; six points are
    moved along their rays 4 units further: brightness x z^2 is ~4x off for them in every frame."""
    h, w = 64, 80
    K = np.array([[50.0, 0, 39.5], [0, 50.0, 31.5], [0, 0, 1]])
    rng = np.random.default_rng(1)
    uv = np.column_stack([rng.uniform(2, w - 3, 1000), rng.uniform(2, h - 3, 1000)])
    z = rng.uniform(4.0, 4.1, 1000)  # 0.6 % outliers: within the 1 % the 0.99 histogram mass allows
    z[[5, 50, 120, 121, 200, 999]] += 4.0
    points = np.column_stack([(uv - K[:2, 2]) / 50.0 * z[:, None], z])
    T = np.tile(np.eye(4), (4, 1, 1))
    images = [np.full((h, w, 3), 128, np.uint8)] * 4
    everywhere, full = np.ones((1000, 4), bool), np.full((h, w), 255, np.uint8)
    clean = clean_point_mask(images, points, everywhere, full, K, T, 0.99)
    assert np.array_equal(np.flatnonzero(~clean), [5, 50, 120, 121, 200, 999])
    assert clean_point_mask(images, points, everywhere, full, K, T, 1.0).all()  # >= 1: no cleaning
    everywhere[7] = False  # a point never seen in the mask is not clean either (0 < 0 / 2 is false)
    clean = clean_point_mask(images, points, everywhere, full, K, T, 0.99)
    assert np.array_equal(np.flatnonzero(~clean), [5, 7, 50, 120, 121, 200, 999])


def test_frame_sparse_points_rounding_mask_and_last_write_wins():
    K = np.array([[10.0, 0, 5], [0, 10.0, 5], [0, 0, 1]])
    pts = np.array([[0.0, 0, 1], [0.04, 0, 1], [0.2, 0.1, 2], [0.0, 0, -1], [2.0, 0, 1], [-0.3, -0.3, 1]])
    mask = np.full((11, 11), 255, np.uint8)
    mask[2, 2] = 0  # point 5 lands on (2, 2)
    ids, xy, z = frame_sparse_points(K, np.eye(4), pts, np.ones(6, bool), mask)
    # 0 and 1 both round to (5, 5): the later one (1) wins; 3 is behind; 4 is outside
    assert ids.tolist() == [1, 2]
    assert xy.tolist() == [[5, 5], [6, 6]] and np.allclose(z, [1, 2])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prep")
    scene = synthetic_scene(tmp / "frames", n_views=6, n_points=300)
    opts = SfMDataOptions(
        downsampling=2.0, network_downsampling=16, inlier_percentage=0.0, visibility_overlap=1
    )
    summary = write_sfm_data(scene, opts, tmp / "sfm_data.npz", tmp / "sfm_data.json", {"source": "test"})
    return scene, load_sfm_data(tmp / "sfm_data.npz"), summary, tmp


def test_saved_file_and_summary(prepared):
    scene, data, summary, tmp = prepared
    assert json.loads((tmp / "sfm_data.json").read_text())["views"] == 6 == summary["views"]
    assert data["input_size"].tolist() == list(data["mask"].shape)
    assert all(s % 16 == 0 for s in data["input_size"])
    assert np.allclose(data["cam_from_world"], scene.cam_from_world)
    assert data["clean"].all() and summary["removed_points"] == []


def test_sparse_depth_is_camera_z_over_scale_at_the_projection(prepared):
    scene, data, _, _ = prepared
    for v in (0, 3):
        depth, valid = sparse_depth(data, v)
        ys, xs = np.nonzero(valid)
        assert len(ys) > 20
        uv, z = project_points(data["K"], data["cam_from_world"][v], data["points"])
        seen = smooth_visibility(scene.visibility, 1)[:, v] > 0
        for y, x in zip(ys[:50], xs[:50], strict=True):
            cand = np.flatnonzero((np.round(uv[:, 0]) == x) & (np.round(uv[:, 1]) == y) & seen)
            assert depth[y, x] * data["global_scale"] == pytest.approx(z[cand[-1]], rel=1e-5)


def test_sparse_flow_points_to_the_same_point_in_the_other_view(prepared):
    _, data, _, _ = prepared
    h, w = data["input_size"]
    flow, valid = sparse_flow(data, 1, 4)
    sel = data["sparse_view"] == 1
    for pid, (x, y) in zip(data["sparse_point"][sel][:40], data["sparse_xy"][sel][:40], strict=True):
        uv_b, _ = project_points(data["K"], data["cam_from_world"][4], data["points"][pid : pid + 1])
        assert valid[y, x] == 1
        assert np.allclose(flow[y, x] * [w, h] + [x, y], np.round(uv_b[0]))
    assert valid.sum() == sel.sum()


def test_relative_motion_maps_camera_b_to_camera_a(prepared):
    _, data, _, _ = prepared
    a_from_b, b_from_a = relative_motion(data, 0, 5)
    X = np.append(data["points"][7], 1.0)
    Xa, Xb = data["cam_from_world"][0] @ X, data["cam_from_world"][5] @ X
    s = data["global_scale"]
    # rotation exact; translation in units of the global scale
    assert np.allclose(a_from_b[:3, :3] @ Xb[:3] + a_from_b[:3, 3] * s, Xa[:3])
    assert np.allclose(b_from_a @ a_from_b, np.eye(4))


def test_prepare_uses_the_overlap_window(tmp_path):
    scene = synthetic_scene(tmp_path / "f", n_views=6, n_points=100, seed=4)
    scene.visibility[:] = 0
    scene.visibility[:, 0] = 1  # every point seen in view 0 only
    base = dict(downsampling=2.0, network_downsampling=16, inlier_percentage=0.0)
    narrow = prepare(scene, SfMDataOptions(**base, visibility_overlap=1))
    wide = prepare(scene, SfMDataOptions(**base, visibility_overlap=3))
    assert set(narrow["sparse_view"].tolist()) == {0, 1}  # window [i - 1, i + 1)
    assert set(wide["sparse_view"].tolist()) == {0, 1, 2, 3}
