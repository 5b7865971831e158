"""Reader/writer of the endoscopy reference's format; the pose convention (camera -> world in
motion.yaml, cam_from_world inside) converted once and checked by projection."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from endo_synthetic import synthetic_scene
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.liu_format import read_liu_folder, write_liu_folder
from workflow_scripts.endo.sfm_data import project_points
from workflow_scripts.endo.trajectory import camera_centres
from workflow_scripts.util import InputDataError


@pytest.fixture()
def written(tmp_path):
    scene = synthetic_scene(tmp_path / "frames")
    folder = tmp_path / "liu"
    write_liu_folder(scene, folder)
    return scene, folder


def test_round_trip(written):
    scene, folder = written
    back = read_liu_folder(folder)
    assert np.allclose(back.K, scene.K)
    assert np.array_equal(back.view_indexes, scene.view_indexes)
    assert np.array_equal(back.frame_indexes, scene.frame_indexes)
    assert np.allclose(back.cam_from_world, scene.cam_from_world, atol=1e-9)
    assert np.allclose(back.points, scene.points, rtol=1e-6)  # float32 PLY
    assert np.array_equal(back.visibility, scene.visibility)
    assert np.array_equal(back.mask, scene.mask)
    assert back.frames_dir == folder and back.frame_path(102).is_file()


def test_motion_yaml_holds_camera_to_world(written):
    """position = camera centre (-R^T t of cam_from_world), orientation = R^T."""
    scene, folder = written
    doc = yaml.safe_load((folder / "motion.yaml").read_text())
    assert list(doc) == ["header", "poses[]"]
    centres = camera_centres(scene.cam_from_world)
    for k, T in enumerate(scene.cam_from_world):
        entry = doc["poses[]"][f"poses[{k}]"]
        assert np.allclose([entry["position"][c] for c in "xyz"], centres[k])
        q = [entry["orientation"][c] for c in "xyzw"]
        assert np.allclose(Rotation.from_quat(q).as_matrix(), T[:3, :3].T)


def test_hand_written_pose_is_inverted_and_projects(tmp_path):
    """A camera at (1, 2, 3), rotated 90 deg about z, sees the world point (1, 2, 8) straight
    ahead at depth 5; the reader must produce cam_from_world accordingly."""
    scene = synthetic_scene(tmp_path / "f", n_views=1, n_points=3)
    folder = tmp_path / "liu"
    write_liu_folder(scene, folder)
    s = np.sqrt(0.5)
    (folder / "motion.yaml").write_text(
        "header: \n  seq: 0\n  stamp: 0.000000000\n  frame_id: \nposes[]:\n  poses[0]: \n"
        "    position: \n      x: 1\n      y: 2\n      z: 3\n"
        f"    orientation: \n      x: 0\n      y: 0\n      z: {s}\n      w: {s}\n"
    )
    T = read_liu_folder(folder).cam_from_world[0]
    assert np.allclose(T[:3, :3], Rotation.from_euler("z", -90, degrees=True).as_matrix())
    uv, z = project_points(scene.K, T, np.array([[1.0, 2.0, 8.0], [2.0, 2.0, 3.0]]))
    assert np.allclose(uv[0], scene.K[:2, 2]) and z[0] == pytest.approx(5.0)
    assert z[1] == pytest.approx(0.0)  # a point beside the camera centre has depth 0


def test_projection_is_preserved_through_the_files(written):
    scene, folder = written
    back = read_liu_folder(folder)
    for v in range(len(scene.view_indexes)):
        uv0, z0 = project_points(scene.K, scene.cam_from_world[v], scene.points)
        uv1, z1 = project_points(back.K, back.cam_from_world[v], back.points)
        assert np.allclose(uv0, uv1, atol=1e-3) and np.allclose(z0, z1, atol=1e-5)


def test_old_three_number_intrinsics(written):
    scene, folder = written
    n = len(scene.view_indexes)
    (folder / "camera_intrinsics_per_view").write_text("90.5\n70.25\n60.75\n" * n)
    K = read_liu_folder(folder).K
    assert np.allclose(K, [[90.5, 0, 70.25], [0, 90.5, 60.75], [0, 0, 1]])


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("view_indexes_per_point", "-1\n100\n-1\n999\n", "frame 999"),
        ("view_indexes_per_point", "-1\n100\n", "lists 1 points"),
        (
            "motion.yaml",
            "header: {seq: 0}\nposes[]:\n  poses[0]: {position: {x: 0, y: 0, z: 0}}\n",
            "poses[0]",
        ),
        ("motion.yaml", "just text", "poses[]"),
        ("visible_view_indexes", "104\n102\n", "ascending"),
        ("structure.ply", "ply\nformat ascii 1.0\nelement face 0\nend_header\n", "vertex"),
        ("camera_intrinsics_per_view", "1\n2\n", "need fx, fy, cx, cy"),
    ],
)
def test_bad_files_name_the_file(written, name, content, problem):
    _, folder = written
    (folder / name).write_text(content)
    with pytest.raises(InputDataError) as err:
        read_liu_folder(folder)
    assert err.value.path.name == name and problem in err.value.problem


def test_missing_pieces(written):
    _, folder = written
    (folder / "00000104.jpg").unlink()
    with pytest.raises(InputDataError, match="104"):
        read_liu_folder(folder)
    shutil.rmtree(folder)
    with pytest.raises(InputDataError, match="not found"):
        read_liu_folder(folder)
