"""Similarity alignment of trajectories (Umeyama) and the error report."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.trajectory import align_similarity, camera_centres, trajectory_error


def test_camera_centres_are_minus_rt_t():
    R = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix()
    c = np.array([1.0, -2.0, 3.0])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, -R @ c
    assert np.allclose(camera_centres(T[None]), c)
    with pytest.raises(ValueError):
        camera_centres(T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_align_similarity_recovers_a_known_transform(seed):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(20, 3))
    R = Rotation.random(random_state=seed).as_matrix()
    s, t = rng.uniform(0.1, 10), rng.normal(size=3)
    s_est, R_est, t_est = align_similarity(src, s * src @ R.T + t)
    assert s_est == pytest.approx(s) and np.allclose(R_est, R) and np.allclose(t_est, t)
    assert np.linalg.det(R_est) == pytest.approx(1.0)


def test_mirror_images_are_not_aligned_by_a_reflection():
    rng = np.random.default_rng(5)
    src = rng.normal(size=(30, 3))
    _, R, _ = align_similarity(src, src * [1, 1, -1])
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_trajectory_error_in_percent_of_length():
    ref = np.column_stack([np.arange(11.0), np.zeros(11), np.zeros(11)])  # 10 units long
    est = 0.5 * ref.copy()
    est[5, 1] += 0.05  # 0.1 reference units off after the 2x scale
    err = trajectory_error(est, ref)
    assert err["length"] == pytest.approx(10.0) and err["scale"] == pytest.approx(2.0, rel=1e-3)
    assert 0.05 < err["max"] < 0.1 and err["max_pct"] == pytest.approx(10 * err["max"])
    assert trajectory_error(ref * 3 + 1, ref)["rmse"] == pytest.approx(0.0, abs=1e-9)
