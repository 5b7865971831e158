"""The demo endoscopy data are exact: video, camera.yaml, CT mesh, depth and poses agree."""

from __future__ import annotations

import json

import cv2
import numpy as np
import open3d as o3d
import pytest
from plyfile import PlyData

from workflow_scripts.demo import endo_demo
from workflow_scripts.demo.endo_render import CavityRenderer
from workflow_scripts.demo.endo_scene import build_cavity, camera_path, mucosa_texture
from workflow_scripts.endo.camera import EndoCamera, load_camera
from workflow_scripts.util import InputDataError


def _frames(video) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _depth(root, seq, i) -> np.ndarray:
    info = json.loads((root / "gt" / seq / "info.json").read_text())
    png = cv2.imread(str(root / "gt" / seq / "depth" / f"{i:08d}.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    return png.astype(np.float64) / info["depth_png_scale"]


def _ct_distance(root, points_world: np.ndarray) -> np.ndarray:
    mesh = o3d.io.read_triangle_mesh(str(root / "p1" / "ct_surface.ply"))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    return scene.compute_distance(o3d.core.Tensor(points_world.astype(np.float32))).numpy()


def test_video_decodes_to_expected_frames(endo_demo_small):
    root, cfg = endo_demo_small["root"], endo_demo_small["config"]
    cam = load_camera(root / "camera.yaml")
    frames = _frames(root / "p1" / "seq01.mp4")
    assert len(frames) == cfg.sequences[0].frames
    assert frames[0].shape == (cam.size[0], cam.size[1], 3)
    cap = cv2.VideoCapture(str(root / "p1" / "seq01.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(cfg.fps, abs=0.01)
    # outside the circular aperture the frame is black, inside it is lit tissue
    cx, cy, r = cam.aperture
    v, u = np.mgrid[0 : cam.size[0], 0 : cam.size[1]]
    rad = np.hypot(u - cx, v - cy)
    gray = frames[5].mean(axis=2)
    assert gray[rad > r + 3].mean() < 3 and gray[rad < 0.5 * r].mean() > 40


def test_camera_yaml_round_trip_and_errors(endo_demo_small, tmp_path):
    cam = load_camera(endo_demo_small["root"] / "camera.yaml")
    expected = endo_demo_small["config"].camera()
    np.testing.assert_allclose(cam.K, expected.K)
    np.testing.assert_allclose(cam.dist, expected.dist)
    assert cam.aperture == pytest.approx(expected.aperture)
    (tmp_path / "camera.yaml").write_text(
        "image_width: 640\nimage_height: 480\nfps: 30\n"
        "camera_matrix: [[300, 0, 320], [0, 300, 240], [0, 0, 1]]\n"
    )
    with pytest.raises(InputDataError, match=r"camera.yaml: missing key 'dist_coeffs'"):
        load_camera(tmp_path / "camera.yaml")
    (tmp_path / "camera.yaml").write_text("camera_matrix: [1, 2]\ndist_coeffs: [0, 0, 0, 0]\n")
    with pytest.raises(InputDataError, match="camera_matrix must be 3x3"):
        load_camera(tmp_path / "camera.yaml")


def test_gt_depth_and_pose_lie_on_ct_surface_through_the_distortion(endo_demo_small):
    """Undistorting pixels with camera.yaml, scaling by GT depth and moving by the GT pose
    gives points on the CT surface; re-projecting them with the distortion gives the pixels."""
    root = endo_demo_small["root"]
    cam = load_camera(root / "camera.yaml")
    cam_from_world = np.load(root / "gt" / "seq01" / "poses.npz")["cam_from_world"]
    rng = np.random.default_rng(0)
    for i in (0, 7):
        depth = _depth(root, "seq01", i)
        vv, uu = np.nonzero(depth > 0)
        pick = rng.choice(len(uu), 3000, replace=False)
        u, v = uu[pick].astype(np.float64), vv[pick].astype(np.float64)
        xy = cam.undistorted_rays(u, v)
        X_cam = np.c_[xy, np.ones(len(xy))] * depth[vv[pick], uu[pick]][:, None]
        world_from_cam = np.linalg.inv(cam_from_world[i])
        X_world = X_cam @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]
        dist = _ct_distance(root, X_world)
        assert np.percentile(dist, 99) < 0.005  # mm; depth PNG quantum 0.002 mm
        rvec, _ = cv2.Rodrigues(cam_from_world[i][:3, :3])
        proj, _ = cv2.projectPoints(X_world, rvec, cam_from_world[i][:3, 3], cam.K, cam.dist)
        np.testing.assert_allclose(proj.reshape(-1, 2), np.c_[u, v], atol=0.01)
        # ignoring the distortion puts the points off the surface: the test can fail
        xy_wrong = (np.c_[u, v] - cam.K[:2, 2]) / cam.K[0, 0]
        X_wrong = np.c_[xy_wrong, np.ones(len(u))] * depth[vv[pick], uu[pick]][:, None]
        X_wrong = X_wrong @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]
        assert np.median(_ct_distance(root, X_wrong)) > 0.1


def test_undistorted_frame_matches_a_pinhole_rendering(endo_demo_small):
    """cv2.undistort of a decoded frame with camera.yaml equals the same view rendered by an
    ideal pinhole camera, up to codec and resampling error; a zero distortion does not."""
    root, cfg, seed = endo_demo_small["root"], endo_demo_small["config"], endo_demo_small["seed"]
    cam = load_camera(root / "camera.yaml")
    frame = _frames(root / "p1" / "seq01.mp4")[4]
    # rebuild the scene exactly as endo_demo.generate does
    rng = np.random.default_rng([seed, 7])
    cavity = build_cavity(rng, cfg.cavity)
    texture = mucosa_texture(rng)
    poses = camera_path(
        np.random.default_rng([seed, 7, 0]),
        cavity,
        cfg.sequences[0].frames,
        cfg.sequences[0].start,
        cfg.sequences[0].step,
    )
    np.testing.assert_allclose(
        np.linalg.inv(poses), np.load(root / "gt" / "seq01" / "poses.npz")["cam_from_world"]
    )
    renderer = CavityRenderer(cavity, texture, cfg.light, cfg.specular)
    pinhole, _ = renderer.render(poses[4], camera=None, K=cam.K, hw=cam.size)
    pinhole = np.round(pinhole[..., ::-1] * 255).astype(np.float32)
    inner = np.zeros(cam.size, bool)
    v, u = np.mgrid[0 : cam.size[0], 0 : cam.size[1]]
    inner[np.hypot(u - cam.K[0, 2], v - cam.K[1, 2]) < 0.6 * cam.aperture[2]] = True
    good = np.abs(cv2.undistort(frame, cam.K, cam.dist).astype(np.float32) - pinhole)[inner].mean()
    bad = np.abs(frame.astype(np.float32) - pinhole)[inner].mean()
    assert good < 4.0  # 8-bit levels: mp4v compression + bilinear resampling
    assert bad > 2 * good


def test_video_codec_keeps_the_rendered_frames(endo_demo_small):
    root, cfg, seed = endo_demo_small["root"], endo_demo_small["config"], endo_demo_small["seed"]
    rng = np.random.default_rng([seed, 7])
    cavity = build_cavity(rng, cfg.cavity)
    renderer = CavityRenderer(cavity, mucosa_texture(rng), cfg.light, cfg.specular)
    cam_from_world = np.load(root / "gt" / "seq01" / "poses.npz")["cam_from_world"]
    rgb, depth = renderer.render(np.linalg.inv(cam_from_world[3]), cfg.camera())
    decoded = _frames(root / "p1" / "seq01.mp4")[3].astype(np.float64)
    mse = np.mean((decoded - np.round(rgb[..., ::-1] * 255)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30  # PSNR in dB
    np.testing.assert_allclose(depth, _depth(root, "seq01", 3), atol=0.0011)


def test_ct_mesh_loads_with_plyfile_and_open3d(endo_demo_small):
    root, cfg = endo_demo_small["root"], endo_demo_small["config"]
    ply = PlyData.read(str(root / "p1" / "ct_surface.ply"))
    assert "units: millimetres" in ply.comments
    assert ply["vertex"].count > 10000 and ply["face"].count > 2 * ply["vertex"].count * 0.95
    assert ply["vertex"]["x"].dtype == np.float32
    mesh = o3d.io.read_triangle_mesh(str(root / "p1" / "ct_surface.ply"))
    assert len(mesh.triangles) == ply["face"].count and mesh.has_vertex_normals()
    assert mesh.is_edge_manifold() and mesh.is_vertex_manifold()
    extent = mesh.get_axis_aligned_bounding_box().get_extent()
    assert max(extent) == pytest.approx(cfg.cavity.length, rel=0.15)
    # the tube is open at both ends only: exactly two boundary loops of SEGMENTS edges each
    boundary = np.asarray(mesh.get_non_manifold_edges(allow_boundary_edges=False))
    assert len(boundary) == 2 * 160
    # normals point into the cavity: towards the camera positions
    cam_from_world = np.load(root / "gt" / "seq01" / "poses.npz")["cam_from_world"]
    centre = np.linalg.inv(cam_from_world[0])[:3, 3]
    v = np.asarray(mesh.vertices)
    near = np.linalg.norm(v - centre, axis=1) < 12
    n = np.asarray(mesh.vertex_normals)[near]
    assert np.mean(np.einsum("ij,ij->i", n, centre - v[near]) > 0) > 0.95


def test_camera_path_refuses_to_leave_the_cavity(endo_demo_small):
    cfg = endo_demo_small["config"]
    cavity = build_cavity(np.random.default_rng(0), cfg.cavity)
    with pytest.raises(ValueError, match="within 25 mm of the cavity end"):
        camera_path(np.random.default_rng(0), cavity, 500, 6.0, 0.3)


def test_endo_camera_ignores_zero_distortion(tmp_path):
    cam = EndoCamera(
        K=np.array([[300.0, 0, 319.5], [0, 300, 239.5], [0, 0, 1]]),
        dist=np.zeros(5),
        size=(480, 640),
        fps=30.0,
    )
    cam.save(tmp_path / "camera.yaml")
    back = load_camera(tmp_path / "camera.yaml")
    np.testing.assert_allclose(
        back.undistorted_rays(np.array([319.5, 619.5]), np.array([239.5, 239.5])),
        [[0, 0], [1.0, 0]],
        atol=1e-12,
    )
    assert back.aperture is None and back.fps == 30.0
    assert endo_demo.DEPTH_PNG_SCALE == 500.0
