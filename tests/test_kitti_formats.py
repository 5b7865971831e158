"""KITTI raw formats: calibration parser (real and demo files), Velodyne scans, timestamps."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pytest

from workflow_scripts.kitti import calib as kc
from workflow_scripts.kitti import raw
from workflow_scripts.util import InputDataError


@pytest.mark.realdata
def test_real_calibration_parses_to_known_values(shared_dir):
    date_dir = shared_dir / "realdata" / "kitti_raw_calib_2011_09_26" / "2011_09_26"
    c2c = kc.read_calib_file(date_dir / kc.CAM_TO_CAM)
    assert c2c["calib_time"] == "09-Jan-2012 13:57:47"
    rig = kc.load_rig(date_dir)
    assert rig.image_size[2] == (375, 1242)
    np.testing.assert_allclose(rig.P_rect[2][0], [721.5377, 0.0, 609.5593, 44.85728])
    np.testing.assert_allclose(rig.velo_to_cam[:3, 3], [-4.069766e-03, -7.631618e-02, -2.717806e-01])
    assert rig.baseline() == pytest.approx(0.5327, abs=1e-4)  # the real rig: 0.537 - 0.004
    # the projection chain of the reference: P_rect_02 @ R_rect_00 @ velo_to_cam
    R = np.eye(4)
    R[:3, :3] = c2c["R_rect_00"].reshape(3, 3)
    np.testing.assert_allclose(rig.velo_to_image(2), c2c["P_rect_02"].reshape(3, 4) @ R @ rig.velo_to_cam)
    # a point 10 m straight ahead of the LiDAR lands near the principal point, in front
    p = rig.velo_to_image(2) @ np.array([10.0, 0.0, 0.0, 1.0])
    assert p[2] == pytest.approx(9.73, abs=0.05)  # the LiDAR sits 27 cm behind camera 0
    assert abs(p[0] / p[2] - 609.6) < 10 and abs(p[1] / p[2] - 172.9) < 10


def test_calibration_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    entries = {"calib_time": "01-Jan-2011 00:00:00", "P_rect_02": rng.normal(size=(3, 4)) * 100,
               "S_rect_02": np.array([1242.0, 375.0])}
    kc.write_calib_file(tmp_path / "c.txt", entries)
    back = kc.read_calib_file(tmp_path / "c.txt")
    assert back["calib_time"] == entries["calib_time"]
    np.testing.assert_allclose(back["P_rect_02"].reshape(3, 4), entries["P_rect_02"], rtol=1e-6)
    assert re.search(r"S_rect_02: 1\.242000e\+03 3\.750000e\+02", (tmp_path / "c.txt").read_text())


def test_zero_based_intrinsics_shift_principal_point(kitti_demo_small):
    rig = kc.load_rig(kitti_demo_small["root"] / "2011_01_01")
    K1, K0 = rig.K(2, zero_based=False), rig.K(2)
    np.testing.assert_allclose(K1[:2, 2] - K0[:2, 2], [1.0, 1.0])
    assert K0[0, 0] == K1[0, 0] == pytest.approx(721.5377 * rig.image_size[2][1] / 1242)  # KITTI's, scaled


def test_missing_calibration_file_names_the_file(tmp_path):
    with pytest.raises(InputDataError, match="calib_cam_to_cam.txt: calibration file not found"):
        kc.load_rig(tmp_path)


def test_malformed_calibration_line_and_key(tmp_path):
    (tmp_path / kc.CAM_TO_CAM).write_text("P_rect_02 1 2 3\n")
    with pytest.raises(InputDataError, match="line 1 has no 'key: values' form"):
        kc.read_calib_file(tmp_path / kc.CAM_TO_CAM)
    (tmp_path / kc.CAM_TO_CAM).write_text("P_rect_00: 1 2 3\n")
    (tmp_path / kc.VELO_TO_CAM).write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    with pytest.raises(InputDataError, match="malformed key P_rect_00"):
        kc.load_rig(tmp_path)


def test_velodyne_round_trip_and_truncation(tmp_path):
    pts = np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)
    raw.write_velodyne(tmp_path / "a.bin", pts)
    assert (tmp_path / "a.bin").stat().st_size == 100 * 16
    np.testing.assert_array_equal(raw.read_velodyne(tmp_path / "a.bin"), pts)
    (tmp_path / "b.bin").write_bytes(pts.tobytes()[:-4])
    with pytest.raises(InputDataError, match="b.bin: size 1596 bytes is not a multiple of 16"):
        raw.read_velodyne(tmp_path / "b.bin")
    for extra in (1, 2, 3):  # a partial float at the end: the byte count is checked, not the floats
        (tmp_path / "c.bin").write_bytes(pts.tobytes() + b"\0" * extra)
        with pytest.raises(InputDataError, match=f"c.bin: size {1600 + extra} bytes is not a multiple of 16"):
            raw.read_velodyne(tmp_path / "c.bin")


def test_timestamps_round_trip(tmp_path):
    times = np.array([0.0, 0.1037, 0.2, 12.123456789])
    raw.write_timestamps(tmp_path / "t.txt", datetime(2011, 9, 26, 13, 2, 25), times)
    lines = (tmp_path / "t.txt").read_text().splitlines()
    assert lines[0] == "2011-09-26 13:02:25.000000000"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}", ln) for ln in lines)
    np.testing.assert_allclose(raw.read_timestamps(tmp_path / "t.txt"), times, atol=1e-6)
