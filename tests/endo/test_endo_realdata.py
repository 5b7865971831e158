"""The real sinus example of the endoscopy reference (../shared/realdata/endoscopy_sinus_liu):
golden values of its preprocessing (seed_methods §1.7) through our reader, and our SfM on its
35 frames against its own trajectory. Skipped when ../shared is absent."""

from __future__ import annotations

import numpy as np
import pytest

from workflow_scripts.endo.camera import EndoCamera
from workflow_scripts.endo.extract import ExtractOptions, extract_frames
from workflow_scripts.endo.liu_format import read_liu_folder
from workflow_scripts.endo.scene import scene_from_colmap
from workflow_scripts.endo.sfm import SfMOptions, run_sfm_on_frames
from workflow_scripts.endo.sfm_data import SfMDataOptions, prepare
from workflow_scripts.endo.trajectory import camera_centres, trajectory_error

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def sinus(shared_dir):
    folder = shared_dir / "realdata" / "endoscopy_sinus_liu"
    if not folder.is_dir():
        pytest.skip("realdata/endoscopy_sinus_liu is not present")
    return folder


@pytest.fixture(scope="module")
def golden(sinus):
    scene = read_liu_folder(sinus)
    return scene, prepare(
        scene,
        SfMDataOptions(
            downsampling=4.0, network_downsampling=64, inlier_percentage=0.99, visibility_overlap=30
        ),
    )


def test_reader(golden):
    scene, _ = golden
    assert len(scene.view_indexes) == 35 and scene.view_indexes[0] == 4584 and scene.view_indexes[-1] == 4618
    assert scene.points.shape == (570, 3) and scene.visibility.sum() / 570 == pytest.approx(11.55, abs=0.01)
    assert scene.image_size == (1080, 1920)
    T = scene.cam_from_world[0]  # extrinsic[0] of the reference (world -> camera)
    assert np.allclose(T[:3, 3], [0.00642, 0.02418, 0.02651], atol=1e-5)
    off_diagonal = T[:3, :3][~np.eye(3, dtype=bool)]
    assert np.abs(off_diagonal).max() <= 0.0125 and np.allclose(np.diag(T[:3, :3]), 1, atol=2e-4)


def test_golden_crop_intrinsics_scale_mask(golden):
    _, data = golden
    assert data["crop"].tolist() == [11, 267, 88, 408] and data["input_size"].tolist() == [256, 320]
    K = data["K"]
    assert [K[0, 0], K[1, 1], K[0, 2], K[1, 2]] == pytest.approx(
        [169.29275, 169.29275, 130.03175, 106.9795], abs=1e-6
    )
    assert float(data["global_scale"]) == pytest.approx(3.8563907, abs=1e-6)
    assert 100 * np.mean(data["mask"] == 255) == pytest.approx(59.29, abs=0.005)


def test_golden_clean_points(golden):
    _, data = golden
    assert int(data["clean"].sum()) == 564
    assert np.flatnonzero(~data["clean"]).tolist() == [218, 307, 327, 379, 396, 475]


@pytest.mark.slow
def test_our_sfm_on_the_real_frames_agrees_with_the_reference(sinus, tmp_path):
    """Frame folder input (already undistorted, its undistorted_mask.bmp as the mask) ->
    extract_frames -> run_sfm with settings for 1920x1080 frames."""
    ref = read_liu_folder(sinus)
    camera = EndoCamera(K=ref.K, dist=np.zeros(5), size=ref.image_size, fps=30.0)
    extract_frames(sinus, camera, tmp_path / "frames", ExtractOptions())
    opts = SfMOptions(
        max_image_size=960, max_num_features=4096, overlap=10, min_registered_fraction=33 / 35, seed=2026
    )
    summary = run_sfm_on_frames(tmp_path / "frames", tmp_path / "sfm", opts)
    ours = scene_from_colmap(tmp_path / "sfm" / "model", tmp_path / "frames")
    assert summary["registered"] >= 33
    common = np.intersect1d(ours.view_indexes, ref.view_indexes)
    ours_c = camera_centres(ours.cam_from_world[np.searchsorted(ours.view_indexes, common)])
    ref_c = camera_centres(ref.cam_from_world[np.searchsorted(ref.view_indexes, common)])
    err = trajectory_error(ours_c, ref_c)
    print(
        f"\nreal sinus SfM: {summary['registered']}/35 registered, {summary['points3D']} points, "
        f"reprojection {summary['mean_reprojection_error_px']:.2f} px, times {summary['times']}; centre RMSE "
        f"{err['rmse_pct']:.2f} % of the path length, {err['rmse_extent_pct']:.2f} % of its extent"
    )
    assert err["rmse_pct"] < 2.0
