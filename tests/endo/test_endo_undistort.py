"""Undistortion maps and the field-of-view mask: exact geometry against OpenCV's distortion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from workflow_scripts.demo.endo_demo import EndoDemoConfig
from workflow_scripts.endo.camera import EndoCamera
from workflow_scripts.endo.undistort import make_undistorter, max_monotonic_radius
from workflow_scripts.util.options import load_options


@pytest.fixture(scope="module")
def demo_camera(default_config) -> EndoCamera:
    return load_options(EndoDemoConfig, default_config["demo"]["endoscopy"]).camera()


def distort(camera: EndoCamera, K_new: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Distorted pixel (N, 2) of the rays through undistorted pixels (u, v) of K_new."""
    rays = np.stack([(u - K_new[0, 2]) / K_new[0, 0], (v - K_new[1, 2]) / K_new[1, 1], np.ones_like(u)], -1)
    pts, _ = cv2.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, camera.dist)
    return pts.reshape(-1, 2)


@pytest.mark.parametrize("focal_scale", [1.0, 0.8])
def test_maps_sample_the_distorted_projection_of_each_ray(demo_camera, focal_scale):
    und = make_undistorter(demo_camera, focal_scale=focal_scale)
    assert np.allclose(und.K[[0, 1], [0, 1]], demo_camera.K[[0, 1], [0, 1]] * focal_scale)
    assert np.allclose(und.K[:2, 2], demo_camera.K[:2, 2])
    rng = np.random.default_rng(0)
    v, u = rng.integers(0, 480, 500), rng.integers(0, 640, 500)
    expected = distort(demo_camera, und.K, u.astype(float), v.astype(float))
    got = np.stack([und.map_x[v, u], und.map_y[v, u]], -1)
    assert np.abs(got - expected).max() < 2e-3


def test_undistort_moves_content_to_the_pinhole_position(demo_camera):
    """A horizontal intensity ramp in the source reads, after undistortion, the ramp value of
    the distorted position of each pixel's ray (bilinear on a linear ramp is exact)."""
    h, w = demo_camera.size
    src = np.tile(np.round(np.arange(w) * 0.39).astype(np.uint8), (h, 1))
    und = make_undistorter(demo_camera)
    out = und.undistort(src).astype(float)
    v, u = np.mgrid[100:380:7, 150:490:7]
    x_d = distort(demo_camera, und.K, u.ravel().astype(float), v.ravel().astype(float))[:, 0]
    ok = und.mask[v.ravel(), u.ravel()] == 255
    assert ok.sum() > 500
    assert np.abs(out[v.ravel(), u.ravel()][ok] - x_d[ok] * 0.39).max() <= 1.0
    with pytest.raises(ValueError, match="camera.yaml says"):
        und.undistort(src[:-2])


def test_mask_is_the_aperture_seen_through_the_undistortion(demo_camera):
    und = make_undistorter(demo_camera, erode_px=0)
    h, w = demo_camera.size
    v, u = np.mgrid[0:h, 0:w]
    d = distort(demo_camera, und.K, u.ravel().astype(float), v.ravel().astype(float))
    cx, cy, r = demo_camera.aperture
    radius = np.hypot(d[:, 0] - cx, d[:, 1] - cy)
    inside_img = (d[:, 0] >= 1) & (d[:, 0] <= w - 2) & (d[:, 1] >= 1) & (d[:, 1] <= h - 2)
    valid = und.mask.ravel() == 255
    assert valid[(radius < r - 1.5) & inside_img].all()
    assert not valid[radius > r + 0.5].any()
    assert 0.7 < valid.mean() < 0.85  # the circle, cut at top and bottom by the frame


def test_mask_erosion_keeps_a_margin(demo_camera):
    plain = make_undistorter(demo_camera, erode_px=0).mask
    eroded = make_undistorter(demo_camera, erode_px=3).mask
    assert not np.any((eroded == 255) & (plain == 0))
    padded = np.pad((plain == 255).astype(np.uint8), 1)  # outside the frame is invalid too
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    assert dist[eroded == 255].min() > 3.0  # L2 distance to the nearest invalid pixel
    assert dist[(plain == 255) & (eroded == 0)].max() <= 4.5


def test_max_monotonic_radius():
    # r (1 + k1 r^2) turns back at r = 1 / sqrt(-3 k1)
    assert max_monotonic_radius(np.array([-0.3, 0, 0, 0, 0])) == pytest.approx(1 / np.sqrt(0.9), abs=1e-3)
    assert max_monotonic_radius(np.array([0.1, 0.01, 0, 0, 0]), r_max=5.0) == 5.0
    assert max_monotonic_radius(np.array([-0.28, 0.08, 0, 0, 0]), r_max=10.0) > 2.0  # the demo lens


def test_fold_over_region_is_masked_out():
    """k1 = -0.5: the image folds over at r = 0.816; those pixels land inside the source image
    (no aperture) but show the same scene twice, so they are invalid."""
    K = np.array([[300.0, 0, 319.5], [0, 300.0, 239.5], [0, 0, 1]])
    cam = EndoCamera(K=K, dist=np.array([-0.5, 0, 0, 0, 0]), size=(480, 640), fps=30.0)
    und = make_undistorter(cam, erode_px=0)
    v, u = np.mgrid[0:480, 0:640]
    r = np.hypot((u - 319.5) / 300.0, (v - 239.5) / 300.0)
    assert (und.mask[r < 0.79] == 255).all()
    assert (und.mask[r > 0.82] == 0).all()
