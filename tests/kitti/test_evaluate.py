"""Eigen-protocol metrics against hand-computed values."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from models.inference import post_process_disparity
from workflow_scripts.kitti.evaluate import (
    EvalOptions,
    compute_errors,
    evaluate_image,
    evaluate_split,
    garg_crop,
    load_disparities,
    valid_mask,
)
from workflow_scripts.util import InputDataError


def test_metrics_on_hand_computed_values():
    gt = np.array([2.0, 4.0, 10.0, 20.0])
    pred = np.array([1.0, 5.0, 10.0, 30.0])
    e = compute_errors(gt, pred)
    # |gt - pred| / gt = 0.5, 0.25, 0, 0.5
    assert e["abs_rel"] == pytest.approx((0.5 + 0.25 + 0 + 0.5) / 4)
    # (gt - pred)^2 / gt = 0.5, 0.25, 0, 5
    assert e["sq_rel"] == pytest.approx((0.5 + 0.25 + 0 + 5.0) / 4)
    assert e["rmse"] == pytest.approx(np.sqrt((1 + 1 + 0 + 100) / 4))
    logs = [np.log(2.0), np.log(0.8), 0.0, np.log(2 / 3)]
    assert e["rmse_log"] == pytest.approx(np.sqrt(np.mean(np.square(logs))))
    assert e["log10"] == pytest.approx(np.mean(np.abs(np.array(logs) / np.log(10))))
    # max ratios 2, 1.25, 1, 1.5 -> < 1.25: one; < 1.5625: three; < 1.953125: three
    assert (e["a1"], e["a2"], e["a3"]) == (0.25, 0.75, 0.75)


def test_garg_crop_for_kitti_size():
    assert garg_crop(375, 1242) == (153, 371, 44, 1197)  # the indices monodepth2 hard-codes
    assert garg_crop(370, 1226) == (151, 366, 44, 1181)  # 0.99189189 * 370 = 366.9999993


def test_mask_range_and_crop():
    gt = np.full((375, 1242), 10.0)
    gt[200, 100] = 85.0  # beyond max depth
    gt[200, 101] = 0.0
    m = valid_mask(gt, EvalOptions())
    assert m.sum() == (371 - 153) * (1197 - 44) - 2
    assert not m[152, 600] and m[153, 600] and not m[371, 600] and not m[200, 43] and m[200, 44]
    assert valid_mask(gt, EvalOptions(crop="none")).sum() == 375 * 1242 - 1


def test_median_scaling_makes_evaluation_scale_invariant():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2, 60, (375, 1242))
    depth = gt * rng.uniform(0.95, 1.05, gt.shape)
    e1, r1 = evaluate_image(gt, 1.0 / depth, EvalOptions())
    e2, r2 = evaluate_image(gt, 3.0 / depth, EvalOptions())  # depth 3x too small
    assert r1 == pytest.approx(1.0, abs=0.01) and r2 == pytest.approx(3.0 * r1, rel=1e-6)
    assert e1["abs_rel"] == pytest.approx(e2["abs_rel"], rel=1e-6)
    assert e1["abs_rel"] == pytest.approx(0.025, abs=0.002)  # uniform +-5% error: mean 2.5 %


def test_fixed_stereo_scale_and_clamping():
    gt = np.full((375, 1242), 20.0)
    disp = np.full((96, 320), 5.4 / 20.0)  # a stereo model predicts depth / 5.4
    e, ratio = evaluate_image(gt, disp, EvalOptions(scaling="fixed"))
    assert ratio == 5.4 and e["abs_rel"] == pytest.approx(0.0, abs=1e-6) and e["a1"] == 1.0
    e, _ = evaluate_image(gt, np.full((96, 320), 1e-6), EvalOptions(scaling="fixed", fixed_scale=1.0))
    assert e["abs_rel"] == pytest.approx((80.0 - 20.0) / 20.0)  # clamped to max depth


def test_split_means_are_per_image_means():
    gts = [np.full((375, 1242), 10.0), np.full((370, 1226), 10.0)]
    disps = [np.full((10, 30), 1 / 10.0), np.full((10, 30), 1 / 12.0)]
    means, ratios = evaluate_split(gts, disps, EvalOptions(scaling="fixed", fixed_scale=1.0))
    assert means["abs_rel"] == pytest.approx((0.0 + 0.2) / 2)
    np.testing.assert_allclose(ratios, [1.0, 1.0])
    with pytest.raises(ValueError, match="1 predictions for 2"):
        evaluate_split(gts, disps[:1], EvalOptions())


def test_flip_post_processing_matches_reference_blend():
    rng = np.random.default_rng(1)
    d, f = rng.random((2, 4, 100)), rng.random((2, 4, 100))
    out = post_process_disparity(d, f)
    back = f[:, :, ::-1]
    np.testing.assert_allclose(out[:, :, 0], back[:, :, 0])  # left border from the flipped view
    np.testing.assert_allclose(out[:, :, -1], d[:, :, -1])  # right border from the plain view
    np.testing.assert_allclose(out[:, :, 50], 0.5 * (d[:, :, 50] + back[:, :, 50]))
    same = rng.random((1, 3, 40))
    np.testing.assert_allclose(post_process_disparity(same, same[:, :, ::-1]), same)


class _MakesMarker:
    """Unpickling this creates the folder ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_load_disparities_reads_plain_arrays_and_refuses_the_rest(tmp_path):
    key = "kitti.evaluate.external_disparities"
    good = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "good.npy", good)
    np.testing.assert_array_equal(load_disparities(tmp_path / "good.npy", 2), good)
    marker = tmp_path / "UNPICKLED"
    objects = np.empty(2, dtype=object)
    objects[:] = [good[0], _MakesMarker(str(marker))]
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    with open(tmp_path / "list.pkl", "wb") as fh:
        pickle.dump([good[0], _MakesMarker(str(marker))], fh)
    np.save(tmp_path / "flat.npy", good.reshape(2, 12))
    never = ", and files from outside the workflow are never unpickled"
    cases = {"objects.npy": f"it holds an array of Python objects{never}",
             "list.pkl": f"it holds pickled or other data{never}",
             "flat.npy": "holds a float32 array of shape (2, 12), not (N, H, W) numbers",
             "missing.npy": "disparity file not found"}
    for name, problem in cases.items():
        with pytest.raises(InputDataError) as err:
            load_disparities(tmp_path / name, 2)
        assert err.value.path == tmp_path / name and problem in err.value.problem
        assert err.value.fix.endswith(f"and point {key} to it") and "pickle.load" not in str(err.value)
    with pytest.raises(InputDataError, match=r"holds 2 disparity maps for the 3 frames of the test split"):
        load_disparities(tmp_path / "good.npy", 3)
    assert not marker.exists()
