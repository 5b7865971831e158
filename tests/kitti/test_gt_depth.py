"""Ground-truth export: hand-computed projections, golden outputs of monodepth2's
``generate_depth_map`` (tests/fixtures/reference), the demo's depth maps, the stored format,
and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kitti import reference_fixtures as ref
from workflow_scripts.kitti import calib as kc
from workflow_scripts.kitti import raw
from workflow_scripts.kitti.gt_depth import (
    DepthSource,
    DuplicateIndex,
    GtOptions,
    _rounds_into,
    densify,
    lidar_depth_map,
    lidar_depth_pixels,
    png_depth_map,
)
from workflow_scripts.kitti.gt_export import export_split, load_gt, save_gt, save_monodepth2_npz
from workflow_scripts.kitti.split_files import SplitLine
from workflow_scripts.util import InputDataError

# A toy rig: LiDAR axes (x fwd, y left, z up) -> camera axes (x right, y down, z fwd), the
# camera 0.5 m ahead of the LiDAR; f = 10, principal point (3.0, 2.0) in 1-based pixels.
VELO_TO_CAM = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, -0.5], [0, 0, 0, 1.0]])
P_TOY = np.array([[10.0, 0, 3.0, 0], [0, 10.0, 2.0, 0], [0, 0, 1, 0]]) @ VELO_TO_CAM
HW = (3, 4)
VELODYNE, CAMERA = GtOptions(), GtOptions(depth=DepthSource.CAMERA)
EXACT = GtOptions(duplicates=DuplicateIndex.EXACT)


def _pt(u1: float, v1: float, z_cam: float) -> list[float]:
    """LiDAR point that projects to 1-based pixel (u1, v1) at camera depth z_cam."""
    return [z_cam + 0.5, -(u1 - 3.0) * z_cam / 10, -(v1 - 2.0) * z_cam / 10, 0.3]


def _scan(*points) -> np.ndarray:
    return np.array(points, np.float32)


def test_hand_computed_projection_and_rounding():
    # 1-based (3, 2) -> index (1, 2); rounding is half to even: 2.5 -> 2 -> index 1; 3.5 -> 4 -> 3
    scan = _scan(_pt(3.0, 2.0, 4.0), _pt(2.5, 1.0, 8.0), _pt(3.5, 3.0, 2.0), _pt(4.0, 0.4, 6.0))
    depth = lidar_depth_map(scan, P_TOY, HW, CAMERA)
    expected = np.zeros(HW, np.float32)
    expected[1, 2], expected[0, 1], expected[2, 3] = 4.0, 8.0, 2.0  # (4, 0.4) rounds to row -1: out
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    # eigen ground truth stores the LiDAR forward distance, 0.5 m more here
    np.testing.assert_allclose(
        lidar_depth_map(scan, P_TOY, HW, VELODYNE), np.where(expected > 0, expected + 0.5, 0), rtol=1e-6
    )


@pytest.mark.parametrize("size", [4, 5])
def test_in_image_test_on_unrounded_coordinates_matches_round(size):
    # the in-image test skips the rounding pass: 1 <= round(x) <= size decided on x itself,
    # at the half-pixel edges (half to even: round(size + 0.5) = size only for an even size)
    edges = [0.5, 1.5, size - 0.5, size + 0.5, size + 1.5]
    x = np.array([e + d for e in edges for d in (-1e-9, 0.0, 1e-9)] + [-np.inf, np.inf, np.nan, -0.0, 3.0])
    with np.errstate(invalid="ignore"):
        expected = (np.round(x) >= 1) & (np.round(x) <= size)
    np.testing.assert_array_equal(_rounds_into(x, size), expected)


def test_points_behind_the_lidar_are_dropped_but_points_behind_the_camera_are_not():
    # x < 0: dropped before projecting; 0 <= x < 0.5 is behind the camera (z < 0): the
    # reference keeps its (mirrored) pixel with depth x for eigen, clamps camera z to 0
    behind_lidar = [-2.0, 0.0, 0.0, 1.0]
    behind_cam = [0.3, 0.02, 0.0, 1.0]  # z_cam = -0.2: u = 3 + 10 * 0.02 / 0.2 = 4 -> index 3
    depth = lidar_depth_map(_scan(behind_lidar, behind_cam), P_TOY, HW, VELODYNE)
    assert depth[1, 3] == pytest.approx(0.3) and np.count_nonzero(depth) == 1
    assert np.count_nonzero(lidar_depth_map(_scan(behind_lidar, behind_cam), P_TOY, HW, CAMERA)) == 0


def test_duplicates_keep_the_minimum_with_the_reference_index():
    near, far = 3.0, 5.0
    same_pixel = _scan(_pt(2.0, 2.0, far), _pt(2.0, 2.0, near), _pt(2.0, 2.0, 9.0))
    for options in (CAMERA, GtOptions(depth=DepthSource.CAMERA, duplicates=DuplicateIndex.EXACT)):
        assert lidar_depth_map(same_pixel, P_TOY, HW, options)[1, 1] == pytest.approx(near)
    # (v, W-1) and (v+1, 0) share the reference's index v*(W-1)+u-1: the group minimum goes to
    # the first point's pixel, the other pixel keeps its own (last written) depth
    end_of_row, start_of_next = (4.0, 1.0), (1.0, 2.0)  # 1-based -> (0, 3) and (1, 0)
    far_first = _scan(_pt(*end_of_row, far), _pt(*start_of_next, near))
    ref = lidar_depth_map(far_first, P_TOY, HW, CAMERA)
    assert ref[0, 3] == pytest.approx(near) and ref[1, 0] == pytest.approx(near)
    exact = lidar_depth_map(
        far_first, P_TOY, HW, GtOptions(depth=DepthSource.CAMERA, duplicates=DuplicateIndex.EXACT)
    )
    assert exact[0, 3] == pytest.approx(far) and exact[1, 0] == pytest.approx(near)
    near_first = _scan(_pt(*start_of_next, near), _pt(*end_of_row, far))
    np.testing.assert_array_equal(lidar_depth_map(near_first, P_TOY, HW, CAMERA), exact)


def _dense_scan(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random points in front of (and some behind) the sensor, dense enough for many duplicates."""
    pts = np.c_[rng.uniform(-1, 30, n), rng.uniform(-12, 12, n), rng.uniform(-3, 2, n), rng.uniform(0, 1, n)]
    return pts.astype(np.float32)


def _options(vel_depth: bool, duplicates: DuplicateIndex = DuplicateIndex.REFERENCE) -> GtOptions:
    return GtOptions(depth=DepthSource.VELODYNE if vel_depth else DepthSource.CAMERA, duplicates=duplicates)


@pytest.mark.parametrize("vel_depth", [True, False])
@pytest.mark.parametrize("name", ref.gt_scan_names())
def test_identical_to_monodepth2_generate_depth_map(tmp_path, name, vel_depth):
    """Bit-identical (as float32) to what monodepth2's own code returned for the same calibration
    files and scan: rounding edges, duplicates, the sub2ind row wrap, points behind the camera,
    odd and even sizes, a full-size rig (PROVENANCE.md)."""
    raw.write_velodyne(tmp_path / "scan.bin", ref.gt_scan(name))  # through the .bin, as the export reads it
    scan = raw.read_velodyne(tmp_path / "scan.bin")
    rig = kc.load_rig(ref.gt_rig_dir(name))
    expected = ref.gt_reference(name, vel_depth).astype(np.float32)
    ours = lidar_depth_map(scan, rig.velo_to_image(2), rig.image_size[2], _options(vel_depth))
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)
    index, depth = lidar_depth_pixels(scan, rig.velo_to_image(2), rig.image_size[2], _options(vel_depth))
    np.testing.assert_array_equal(densify(index, depth, rig.image_size[2]), expected)  # the stored form


def test_the_golden_maps_hold_the_quirks_they_are_meant_to_test():
    """The fixtures do exercise what a plausible re-implementation gets wrong: on the toy rig
    (6 x 4, f = 8) a point's pixel is known exactly (make_inputs.toy_scan)."""
    cam, velo = ref.gt_reference("toy_even_edges", False), ref.gt_reference("toy_even_edges", True)
    assert cam[2, 2] == 3.0  # three points on one pixel (5, 3, 9 m): the minimum, not the last
    assert cam[0, 5] == 2.0  # its only point is at 6 m; the row-wrapped index gives it (1, 0)'s 2 m
    assert cam[3, 1] == 0.0 and velo[3, 1] == 0.375  # behind the camera: camera z < 0 wins, clamped to 0
    assert velo[0, 4] == 0.25 and cam[0, 4] == 0.0  # alone behind the camera: kept only for eigen
    assert cam[2, 1] == 8.0 and cam[2, 0] == 2.0  # 1.5 +- 2^-10 px: rounded up / down
    assert ref.gt_reference("toy_odd_edges", True).shape == (5, 7)
    # the reference's collapsed duplicate index changes pixels in every rig with duplicates
    for name in ("toy_even_edges", "toy_odd_edges", "small_rotated_random0", "kitti_like_dense"):
        rig = kc.load_rig(ref.gt_rig_dir(name))
        exact = lidar_depth_map(
            ref.gt_scan(name), rig.velo_to_image(2), rig.image_size[2], _options(False, DuplicateIndex.EXACT)
        )
        assert np.count_nonzero(exact != ref.gt_reference(name, False).astype(np.float32)) >= 2, name
    assert ref.gt_reference("kitti_like_sweep", True).shape == (375, 1242)


def test_demo_lidar_ground_truth_matches_the_rendered_depth(kitti_demo_small):
    """Camera-z ground truth from the scan agrees with the demo's dense depth; eigen's LiDAR-x
    depth is that plus the 27 cm the LiDAR sits behind camera 0."""
    root = kitti_demo_small["root"]
    for date, drive in (("2011_01_01", "0001"), ("2011_01_02", "0003")):
        rig = kc.load_rig(root / date)
        path = raw.drive_dir(root, date, drive)
        scan = raw.read_velodyne(raw.velodyne_path(path, 2))
        cam = lidar_depth_map(scan, rig.velo_to_image(2), rig.image_size[2], CAMERA)
        rendered = png_depth_map(path / "proj_depth" / "groundtruth" / "image_02" / "0000000002.png")
        assert cam.shape == rendered.shape == rig.image_size[2]
        both = (cam > 0) & (rendered > 0) & (cam < 60)
        rel = np.abs(cam[both] - rendered[both]) / rendered[both]
        assert both.sum() > 8000
        assert np.median(rel) < 0.003 and np.mean(rel < 0.03) > 0.95  # pixel-centre rounding + occlusions
        velo = lidar_depth_map(scan, rig.velo_to_image(2), rig.image_size[2], VELODYNE)
        assert np.array_equal(velo > 0, cam > 0)
        front = scan[scan[:, 0] > 1.0].astype(np.float64)
        z_cam = (rig.rect_from_velo() @ np.c_[front[:, :3], np.ones(len(front))].T)[2]
        offset = np.median(front[:, 0] - z_cam)  # about 0.27 m (mount offset and rotation)
        assert 0.2 < offset < 0.35
        assert np.median(velo[both] - cam[both]) == pytest.approx(offset, abs=0.01)


def test_export_round_trip_without_pickle(kitti_demo_small, tmp_path):
    root = kitti_demo_small["root"]
    lines = [
        SplitLine("2011_01_01/2011_01_01_drive_0001_sync", 1, "l"),
        SplitLine("2011_01_02/2011_01_02_drive_0003_sync", 3, "l"),
    ]
    gt = export_split(lines, root, "velodyne")
    save_gt(tmp_path / "eigen.npz", gt)
    with np.load(tmp_path / "eigen.npz") as f:  # allow_pickle=False by default
        assert {"shapes", "offsets", "index", "depth", "files"} <= set(f.files)
    back = load_gt(tmp_path / "eigen.npz")
    assert back.files == [line.text() for line in lines] and back.meta["duplicates"] == "reference"
    sizes = kitti_demo_small["config"].dates
    assert [m.shape for m in back.maps()] == [tuple(sizes[line.date]) for line in lines]  # sizes differ
    assert len({m.shape for m in back.maps()}) == 2
    for i, line in enumerate(lines):
        rig = kc.load_rig(root / line.date)
        scan = raw.read_velodyne(raw.velodyne_path(root / line.folder, line.frame))
        np.testing.assert_array_equal(
            back.dense(i), lidar_depth_map(scan, rig.velo_to_image(2), rig.image_size[2])
        )
    save_monodepth2_npz(tmp_path / "gt_depths.npz", back)
    data = np.load(tmp_path / "gt_depths.npz", allow_pickle=True)["data"]
    assert data.dtype == object and len(data) == 2
    np.testing.assert_array_equal(data[1], back.dense(1))
    bench = export_split(lines, root, "png")
    expected = png_depth_map(
        root / lines[0].folder / "proj_depth" / "groundtruth" / "image_02" / "0000000001.png"
    )
    np.testing.assert_array_equal(bench.dense(0), expected)
    assert bench.meta["depth_kind"] == "camera"


def test_pixels_are_sorted_and_positive():
    scan = _dense_scan(np.random.default_rng(1), 3000)
    P = np.array([[30.0, 0, 31.2, 0], [0, 30.0, 18.7, 0], [0, 0, 1, 0]]) @ VELO_TO_CAM
    index, depth = lidar_depth_pixels(scan, P, (37, 61))
    assert np.all(np.diff(index) > 0) and np.all(depth > 0) and depth.dtype == np.float32


# ---------------------------------------------------------------- bad input
def _demo_copy(kitti_demo_small, tmp_path):
    """A writable copy of one date of the small demo (calibration + one drive, 2 frames)."""
    import shutil

    src = kitti_demo_small["root"] / "2011_01_01"
    dst = tmp_path / "kitti" / "2011_01_01"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("000000000[2-9].*"))
    return tmp_path / "kitti", [SplitLine("2011_01_01/2011_01_01_drive_0001_sync", i, "l") for i in (0, 1)]


def _export_leaves_nothing(root, lines, out):
    from workflow_scripts.export_gt_depth import main
    from workflow_scripts.kitti.split_files import write_split

    write_split(out.parent / "test_files.txt", lines)
    with pytest.raises(InputDataError) as err:
        main(out.parent / "test_files.txt", out, "eigen", root, GtOptions())
    assert not out.exists() and not list(out.parent.glob(".*tmp*"))
    return str(err.value)


def test_missing_calibration_file_is_named(kitti_demo_small, tmp_path):
    root, lines = _demo_copy(kitti_demo_small, tmp_path)
    (root / "2011_01_01" / kc.VELO_TO_CAM).unlink()
    message = _export_leaves_nothing(root, lines, tmp_path / "gt" / "eigen.npz")
    assert "calib_velo_to_cam.txt: calibration file not found" in message


def test_malformed_calibration_line_is_named(kitti_demo_small, tmp_path):
    root, lines = _demo_copy(kitti_demo_small, tmp_path)
    path = root / "2011_01_01" / kc.CAM_TO_CAM
    path.write_text(path.read_text().replace("R_rect_00:", "R_rect_00 "))
    message = _export_leaves_nothing(root, lines, tmp_path / "gt" / "eigen.npz")
    assert f"{path}: line" in message and "has no 'key: values' form" in message


def test_truncated_velodyne_scan_is_named(kitti_demo_small, tmp_path):
    root, lines = _demo_copy(kitti_demo_small, tmp_path)
    scan = raw.velodyne_path(root / lines[1].folder, 1)
    scan.write_bytes(scan.read_bytes()[:-6])
    message = _export_leaves_nothing(root, lines, tmp_path / "gt" / "eigen.npz")
    assert str(scan) in message and "not a multiple of 16" in message
