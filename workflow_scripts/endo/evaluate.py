"""Evaluation of the endoscopy branch: depth against the SfM sparse points, the constant
baseline, the check of a registration against true camera poses, and the results table.

Depth metrics follow the Eigen protocol's formulas with the ablation branch of the endoscopy
reference's target (seed_methods §7.5: AbsRel and delta < 1.25 against SfM sparse depth):
per frame, the prediction is scaled by median(SfM z) / median(predicted z) over the frame's
sparse samples, then abs_rel = mean(|d - z| / z) and delta1 = mean(max(d / z, z / d) < 1.25);
frames are averaged (each frame weighs the same).
"""

from __future__ import annotations

import numpy as np

from workflow_scripts.endo.pointcloud import PredictedDepth, frame_sparse_samples
from workflow_scripts.endo.trajectory import camera_centres, similarity_matrix

__all__ = [
    "EVAL_COLUMNS",
    "constant_prediction",
    "median_scaled_errors",
    "registration_truth_check",
    "sparse_depth_metrics",
]

# Columns of results/endo_eval.csv, in order.
EVAL_COLUMNS = [
    "stage",
    "sequence",
    "patient",
    "split",
    "frames",
    "points",
    "points_registered",
    "scale_mm_per_sfm_unit",
    "residual_mean_mm",
    "residual_median_mm",
    "residual_rms_mm",
    "residual_p95_mm",
    "register_seconds",
    "ambiguous",
    "runner_up_ratio",
    "sparse_frames",
    "sparse_samples",
    "abs_rel",
    "delta1",
    "truth_scale_ratio",
    "truth_rotation_deg",
    "truth_camera_rms_mm",
]


def constant_prediction(sfm: dict) -> PredictedDepth:
    """The constant baseline: every registered view gets one depth, the median of its SfM
    sparse z (SfM units; the sequence's median where a view has no sample), over the whole mask."""
    h, w = (int(s) for s in sfm["input_size"])
    views = np.asarray(sfm["view_indexes"], np.int64)
    fallback = float(np.median(sfm["sparse_z"])) if len(sfm["sparse_z"]) else 1.0
    depth = np.empty((len(views), h, w), np.float32)
    for v in range(len(views)):
        z = sfm["sparse_z"][sfm["sparse_view"] == v]
        depth[v] = float(np.median(z)) if len(z) else fallback
    return PredictedDepth(depth=depth, frame_indexes=views, K=np.asarray(sfm["K"], np.float64),
                          mask=(np.asarray(sfm["mask"]) == 255).astype(np.uint8))


def median_scaled_errors(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(abs_rel, delta1) of depths ``pred`` (M,) against sparse depths ``truth`` (M,) after
    scaling ``pred`` by median(truth) / median(pred); samples with a depth <= 0 or a non-finite
    prediction are skipped; NaN without samples."""
    ok = np.isfinite(pred) & (pred > 0) & (truth > 0)
    d, z = pred[ok].astype(np.float64), truth[ok].astype(np.float64)
    if not len(z):
        return float("nan"), float("nan")
    d = d * np.median(z) / np.median(d)
    return float(np.mean(np.abs(d - z) / z)), float(np.mean(np.maximum(d / z, z / d) < 1.25))


def sparse_depth_metrics(pred: PredictedDepth, sfm: dict) -> dict:
    """abs_rel and delta1 of ``pred`` against the SfM sparse depth after per-frame median
    scaling (module docstring). Samples outside the prediction's mask or with depth <= 0 are
    skipped. Returns {"sparse_frames", "sparse_samples", "abs_rel", "delta1"} (NaN without samples)."""
    view_of = {int(f): v for v, f in enumerate(sfm["view_indexes"])}
    abs_rel, delta1, samples = [], [], 0
    for n, frame in enumerate(pred.frame_indexes):
        view = view_of.get(int(frame))
        if view is None:
            continue
        xy, z = frame_sparse_samples(sfm, view, pred.depth.shape[1:])
        d = pred.depth[n][xy[:, 1], xy[:, 0]].astype(np.float64)
        ok = (pred.mask[xy[:, 1], xy[:, 0]] > 0) & np.isfinite(d) & (d > 0) & (z > 0)
        if not ok.any():
            continue
        errors = median_scaled_errors(d[ok], z[ok])
        abs_rel.append(errors[0])
        delta1.append(errors[1])
        samples += int(ok.sum())
    return {
        "sparse_frames": len(abs_rel),
        "sparse_samples": samples,
        "abs_rel": float(np.mean(abs_rel)) if abs_rel else float("nan"),
        "delta1": float(np.mean(delta1)) if delta1 else float("nan"),
    }


def registration_truth_check(ct_from_sfm: np.ndarray, sfm: dict, true_cam_from_ct: np.ndarray,
                             true_frames: np.ndarray) -> dict:
    """Compare a recovered SfM -> CT similarity with the one the true camera poses give.

    The reference similarity is Umeyama between the SfM camera centres and the true centres
    (mm) of the same frames. Returns its own fit RMS, the recovered / reference scale ratio,
    the angle (deg) between the rotations, the RMS distance (mm) between the SfM camera
    centres mapped by the recovered similarity and the true centres, and the reference itself
    (``ct_from_sfm``, 4 x 4 nested list: SfM units -> CT mm; the report places the true cloud with it).
    """
    row = {int(f): i for i, f in enumerate(true_frames)}
    views = [v for v, f in enumerate(sfm["view_indexes"]) if int(f) in row]
    c_sfm = camera_centres(sfm["cam_from_world"][views])
    c_true = camera_centres(true_cam_from_ct[[row[int(sfm["view_indexes"][v])] for v in views]])
    ref = similarity_matrix(c_sfm, c_true)
    mapped_ref = c_sfm @ ref[:3, :3].T + ref[:3, 3]
    mapped = c_sfm @ ct_from_sfm[:3, :3].T + ct_from_sfm[:3, 3]
    s_ref, s_rec = np.cbrt(np.linalg.det(ref[:3, :3])), np.cbrt(np.linalg.det(ct_from_sfm[:3, :3]))
    dR = (ct_from_sfm[:3, :3] / s_rec) @ (ref[:3, :3] / s_ref).T
    angle = np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1.0, 1.0)))
    return {
        "frames": len(views),
        "reference_fit_rms_mm": float(np.sqrt(np.mean(np.sum((mapped_ref - c_true) ** 2, 1)))),
        "reference_scale": float(s_ref),
        "scale_ratio": float(s_rec / s_ref),
        "rotation_deg": float(angle),
        "camera_rms_mm": float(np.sqrt(np.mean(np.sum((mapped - c_true) ** 2, 1)))),
        "ct_from_sfm": ref.tolist(),
    }
