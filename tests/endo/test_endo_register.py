"""Similarity registration to the CT surface: automatic random trials on the demo cavity,
the manual initial pose file, recovery of a known SfM -> CT similarity, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from plyfile import PlyData, PlyElement
from scipy.spatial.transform import Rotation

from workflow_scripts.demo.endo_demo import write_ct_ply
from workflow_scripts.demo.endo_scene import CavityConfig, build_cavity
from workflow_scripts.endo.evaluate import registration_truth_check
from workflow_scripts.endo.register import (
    initial_from_poses,
    load_ct_surface,
    read_initial_poses,
    register_similarity,
    residual_stats,
)
from workflow_scripts.endo.register_trials import TrialOptions, run_trial
from workflow_scripts.endo.trajectory import camera_centres, similarity_matrix
from workflow_scripts.util import InputDataError


@pytest.fixture(scope="module")
def cavity_ct(tmp_path_factory, default_config):
    """The demo's CT surface (same generator and seed as make_demo_endoscopy, no rendering)."""
    section = default_config["demo"]["endoscopy"]["cavity"]
    cavity = build_cavity(np.random.default_rng([default_config["seed"], 7]), CavityConfig(**section))
    path = tmp_path_factory.mktemp("ct") / "ct_surface.ply"
    write_ct_ply(path, *cavity.ct_mesh())
    ct = load_ct_surface(path)
    return {"ct": ct, "dense": np.asarray(ct.sample(0.3, 1).points), "cavity": cavity}


def test_residual_is_distance_to_triangles_not_vertices(cavity_ct):
    ct = cavity_ct["ct"]
    tri = np.asarray(ct.mesh.triangles)[1000]
    verts = np.asarray(ct.mesh.vertices)[tri]
    centre = verts.mean(0)  # inside a triangle: 0 to the surface, > 0 to every vertex
    n = np.cross(verts[1] - verts[0], verts[2] - verts[0])
    n /= np.linalg.norm(n)
    d = ct.distance(np.stack([centre, centre + 0.05 * n]))
    assert d[0] < 1e-4 and d[1] == pytest.approx(0.05, abs=1e-4)
    assert np.min(np.linalg.norm(np.asarray(ct.mesh.vertices) - centre, axis=1)) > 0.05
    st = residual_stats(np.array([0.0, 1.0, 2.0, 3.0]))
    assert st["rms_mm"] == pytest.approx(np.sqrt(3.5)) and st["median_mm"] == 1.5


@pytest.mark.parametrize("seed", [3, 11])
def test_random_similarity_is_recovered_automatically(cavity_ct, seed):
    """Partial cavity segment + 0.1 mm noise, scale 0.5-2, rotation <= 30 deg, any
    translation: residual RMS within noise + 0.1 mm and the pose itself right."""
    rng = np.random.default_rng(seed)
    r = run_trial(cavity_ct["ct"], cavity_ct["dense"], rng, TrialOptions(points=3000))
    assert r["success"], r
    assert r["pose_error_mm"] < 0.1 and abs(r["scale_ratio"] - 1) < 0.005


def test_large_rotation_and_manual_initial_pose(cavity_ct, tmp_path):
    """A cloud in an 'SfM' frame rotated by 150 deg is found automatically; the reference's
    pose file (frame, t, q with flipped y/z axes) gives the same answer."""
    ct, dense = cavity_ct["ct"], cavity_ct["dense"]
    rng = np.random.default_rng(5)
    c = cavity_ct["cavity"].centre[200]  # 40 mm along the centre line
    part = dense[np.linalg.norm(dense - c, axis=1) < 18.0]
    part = part[rng.choice(len(part), 3000, replace=False)]
    s, R = 0.4, Rotation.from_rotvec([0.0, 2.6, 0.5]).as_matrix()
    ct_from_sfm = np.eye(4)
    ct_from_sfm[:3, :3], ct_from_sfm[:3, 3] = s * R, [5.0, -30.0, 12.0]
    sfm_from_ct = np.linalg.inv(ct_from_sfm)
    cloud = part @ sfm_from_ct[:3, :3].T + sfm_from_ct[:3, 3]
    auto = register_similarity(cloud, ct)
    assert auto["scale"] == pytest.approx(s, rel=2e-3) and auto["stats"]["rms_mm"] < 0.05
    # manual: a camera at the cloud's centre (frame 7) whose true pose in CT we write down
    cam_from_world = np.eye(4)
    cam_from_world[:3, 3] = -cloud.mean(0)
    ct_from_cam = ct_from_sfm @ np.linalg.inv(cam_from_world)
    Rc = ct_from_cam[:3, :3] / s
    Rc_file = Rc.copy()
    Rc_file[:, 1:] *= -1  # the file holds the flipped axes
    q = Rotation.from_matrix(Rc_file).as_quat()  # x, y, z, w
    t = ct_from_cam[:3, 3]
    pose_file = tmp_path / "initial_pose.txt"
    pose_file.write_text(f"7, {t[0]}, {t[1]}, {t[2]}, {q[3]}, {q[0]}, {q[1]}, {q[2]}\n")
    poses = read_initial_poses(pose_file)
    assert np.allclose(poses[7][:3, :3], Rc) and np.allclose(poses[7][:3, 3], t)
    init = initial_from_poses(poses, np.array([7]), cam_from_world[None], scale=0.8 * s)
    manual = register_similarity(cloud, ct, initial=init)
    assert manual["hypotheses"] == 1 and manual["scale"] == pytest.approx(s, rel=2e-3)
    assert manual["stats"]["rms_mm"] < 0.05


def test_umeyama_and_truth_check_are_exact():
    rng = np.random.default_rng(0)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = 2.5 * Rotation.random(random_state=1).as_matrix(), [1.0, 2.0, 3.0]
    centres_sfm = rng.normal(size=(10, 3))
    assert np.allclose(similarity_matrix(centres_sfm, centres_sfm @ T[:3, :3].T + T[:3, 3]), T)
    cam_from_world = np.tile(np.eye(4), (10, 1, 1))
    cam_from_world[:, :3, 3] = -centres_sfm
    assert np.allclose(camera_centres(cam_from_world), centres_sfm)
    true = np.tile(np.eye(4), (20, 1, 1))  # true poses of frames 0..19; SfM has 4..13
    true[4:14, :3, 3] = -(centres_sfm @ T[:3, :3].T + T[:3, 3])
    sfm = {"view_indexes": np.arange(10) + 4, "cam_from_world": cam_from_world}
    check = registration_truth_check(T, sfm, true, np.arange(20))
    assert check["frames"] == 10 and check["camera_rms_mm"] < 1e-9
    assert check["scale_ratio"] == pytest.approx(1.0) and check["rotation_deg"] < 1e-4
    # a pose turned over: the check says how far off, and keeps the true similarity (the report's)
    flipped = T @ np.diag([1.0, -1.0, -1.0, 1.0])
    check = registration_truth_check(flipped, sfm, true, np.arange(20))
    assert check["rotation_deg"] == pytest.approx(180.0, abs=1e-4)
    np.testing.assert_allclose(check["ct_from_sfm"], T, atol=1e-9)
    assert json.loads(json.dumps(check))["ct_from_sfm"] == check["ct_from_sfm"]  # plain lists


def test_bad_input_names_the_file(tmp_path, cavity_ct):
    empty = tmp_path / "empty.ply"
    xyz = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    PlyData([PlyElement.describe(np.empty(0, xyz), "vertex")]).write(str(empty))
    with pytest.raises(InputDataError, match=r"empty\.ply: CT surface has no points"):
        load_ct_surface(empty)
    cloud_only = tmp_path / "points.ply"
    pts = np.zeros(10, xyz)
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(cloud_only))
    with pytest.raises(InputDataError, match=r"points\.ply: CT surface has 10 points but no faces"):
        load_ct_surface(cloud_only)
    with pytest.raises(InputDataError, match=r"fused\.ply: point cloud has 50 points, fewer than"):
        cloud = np.random.default_rng(0).normal(size=(50, 3))
        register_similarity(cloud, cavity_ct["ct"], source_path="fused.ply")
    bad = tmp_path / "pose.txt"
    bad.write_text("7, 1, 2, 3, 1, 0, 0\n")
    with pytest.raises(InputDataError, match=r"pose\.txt: line 1 has 7 values"):
        read_initial_poses(bad)
