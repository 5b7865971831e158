"""Eigen-protocol depth evaluation (monodepth2 ``evaluate_depth.py``; seed_methods §7.1, §7.3).

Per image: the predicted (scaled) disparity is resized bilinearly to the ground-truth size,
inverted to depth, masked to ``min_depth < gt < max_depth`` (and the Garg crop on the eigen
split), scaled (per-image median ratio, or a fixed factor such as 5.4 for stereo models trained
with a 0.1 baseline), clamped to [min_depth, max_depth], and scored with the 7 Eigen metrics plus
log10. Split metrics are means over images (as the references report them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd

from workflow_scripts.kitti import cityscapes as cs
from workflow_scripts.kitti.split_config import split_key
from workflow_scripts.util import InputDataError
from workflow_scripts.util.options import option

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "a1", "a2", "a3")
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)  # rows, cols as fractions
STEREO_SCALE = 5.4  # KITTI baseline 0.54 m / training baseline 0.1 "stereo units"


@dataclass(frozen=True)
class EvalOptions:
    """How predictions are compared with ground truth.

    Attributes:
        min_depth, max_depth: valid ground-truth range and clamp range (m); monodepth2 uses
            1e-3 / 80, SC-Depth 0.1 / 80.
        crop: "garg" (LiDAR ground truth: eigen and split files) or "none" (eigen_benchmark: gt > 0 only).
        scaling: "median" (per-image median ratio, monocular models) or "fixed".
        fixed_scale: factor applied to the predicted depth when ``scaling == "fixed"``
            (5.4 for stereo-trained models, 1.0 for metric predictions).
    """

    min_depth: float = 1e-3
    max_depth: float = 80.0
    crop: str = "garg"
    scaling: str = "median"
    fixed_scale: float = STEREO_SCALE

    def __post_init__(self) -> None:
        if self.crop not in ("garg", "none"):
            raise ValueError(f"crop must be 'garg' or 'none', got {self.crop!r}")
        if self.scaling not in ("median", "fixed"):
            raise ValueError(f"scaling must be 'median' or 'fixed', got {self.scaling!r}")


def garg_crop(height: int, width: int) -> tuple[int, int, int, int]:
    """Row/column bounds ``(top, bottom, left, right)`` of the Garg/Eigen crop, truncated with
    ``int()`` as the reference does (375x1242 -> rows 153:371, cols 44:1197)."""
    r0, r1, c0, c1 = GARG_CROP
    return int(r0 * height), int(r1 * height), int(c0 * width), int(c1 * width)


def valid_mask(gt: np.ndarray, opts: EvalOptions) -> np.ndarray:
    """(H, W) bool: pixels that take part in the evaluation."""
    if opts.crop == "none":
        return gt > 0
    mask = (gt > opts.min_depth) & (gt < opts.max_depth)
    top, bottom, left, right = garg_crop(*gt.shape)
    crop = np.zeros_like(mask)
    crop[top:bottom, left:right] = True
    return mask & crop


def compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The Eigen metrics between matching 1-D arrays of positive depths (m)."""
    thresh = np.maximum(gt / pred, pred / gt)
    return {
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25**2)),
        "a3": float(np.mean(thresh < 1.25**3)),
    }


def prediction_depth(disp: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Unscaled depth (H, W) float64 of a predicted disparity (h, w), resized (bilinear) to the
    ground truth's ``shape`` (H, W) and inverted, as the evaluation compares it."""
    h, w = shape
    resized = cv2.resize(np.asarray(disp, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return 1.0 / np.maximum(resized.astype(np.float64), 1e-12)


def evaluate_image(gt: np.ndarray, disp: np.ndarray, opts: EvalOptions) -> tuple[dict[str, float], float]:
    """Score one prediction.

    Args:
        gt: (H, W) ground-truth depth in metres, 0 = no measurement.
        disp: (h, w) predicted disparity (any resolution; inverse of depth up to scale).
    Returns:
        metrics and the scale ratio applied (median ratio, or the fixed factor).
    """
    depth = prediction_depth(disp, gt.shape)
    mask = valid_mask(gt, opts)
    if not mask.any():
        raise ValueError("no valid ground-truth pixel in this image")
    g, p = gt[mask], depth[mask]
    ratio = float(np.median(g) / np.median(p)) if opts.scaling == "median" else opts.fixed_scale
    p = np.clip(p * ratio, opts.min_depth, opts.max_depth)
    return compute_errors(g, p), ratio


def evaluate_split(
    gts: list[np.ndarray], disps: np.ndarray | list[np.ndarray], opts: EvalOptions
) -> tuple[dict[str, float], np.ndarray]:
    """Mean metrics over images and the per-image scale ratios (N,)."""
    if len(gts) != len(disps):
        raise ValueError(f"{len(disps)} predictions for {len(gts)} ground-truth images")
    rows, ratios = [], []
    for gt, disp in zip(gts, disps, strict=True):
        errors, ratio = evaluate_image(gt, disp, opts)
        rows.append([errors[m] for m in METRICS])
        ratios.append(ratio)
    means = np.mean(np.array(rows), axis=0)
    return dict(zip(METRICS, means.tolist(), strict=True)), np.array(ratios)


def abs_rel_movable(gts: list[np.ndarray], disps, labels: list[np.ndarray], ratios: np.ndarray,
                    opts: EvalOptions) -> float:
    """abs_rel on the evaluated pixels of movable classes (labels: (H, W) trainIds at the
    ground truth's size), with each image's scale ratio of the whole image; the mean over the
    images that have such pixels (NaN if none has)."""
    values = []
    for gt, disp, label, ratio in zip(gts, disps, labels, ratios, strict=True):
        if label.shape != gt.shape:
            raise ValueError(f"labels of size {label.shape} for ground truth of size {gt.shape}")
        mask = valid_mask(gt, opts) & np.isin(label, cs.MOVABLE_TRAIN_IDS)
        if not mask.any():
            continue
        p = np.clip(ratio * prediction_depth(disp, gt.shape)[mask], opts.min_depth, opts.max_depth)
        values.append(float(np.mean(np.abs(gt[mask] - p) / gt[mask])))
    return float(np.mean(values)) if values else float("nan")


NOMINAL_KITTI_BASELINE = 0.54  # metres: the references' x5.4 = 0.54 / 0.1
EvalStage = Literal["teacher", "student", "finetune", "constant"]


@dataclass(frozen=True, kw_only=True)
class KittiEvalOptions:
    """Prediction and evaluation (rules predict_depth, evaluate_depth -> results/kitti_eval.csv)."""

    split: str = option(
        "eigen",
        "Test split of results/kitti_eval.csv: eigen (LiDAR ground truth), eigen_benchmark (KITTI's "
        "annotated depth maps) or the path of your own split file in monodepth2's format "
        "(<date>/<drive> <frame> <l|r> per line; LiDAR ground truth and the Garg crop as for eigen; "
        "its outputs are named by the file's stem; docs/beyond_eigen.md).",
        pattern=r"^(eigen|eigen_benchmark|.*/.*|.*\.txt)$",
    )
    stages: tuple[EvalStage, ...] = option(
        ("teacher", "student", "finetune", "constant"),
        "Rows of the table: trained stages (each needs the ones before it) and constant = a "
        "constant-depth baseline; a recipe of a single method lists only the stage that trains it "
        "(docs/recipes.md), and the later stages are not trained.",
        minItems=1,
        uniqueItems=True,
    )
    post_process: bool = option(False, "monodepth2's flip post-processing of the predictions.")
    protocol: Literal["monodepth2", "sc_depth"] = option(
        "monodepth2", "monodepth2 (depth 1e-3 .. 80 m, Garg crop on eigen) or sc_depth (minimum depth 0.1 m)."
    )
    scalings: tuple[Literal["median", "stereo"], ...] = option(
        ("median", "stereo"),
        "Scalings reported per stage: median (per-image median ratio) and stereo (the "
        "fixed factor true baseline / stereo_baseline, 5.4 on KITTI).",
        minItems=1,
    )
    threads: int = option(
        1,
        "PyTorch threads of predict_depth on the CPU: a setting, as the last bits of the disparities depend "
        "on it (1 lets a prediction start as soon as one core is free; more for large CPU-only runs).",
        minimum=1,
    )
    labels: str = option(
        "",
        "Semantic labels of the test frames, for abs_rel_movable and results/kitti_seg_eval.csv: a "
        "Cityscapes-format folder whose cities are drive folders (gtFine/<split>/<drive>/"
        '<drive>_<frame:010d>_gtFine_labelIds.png); "" = the demo\'s labels on the demo, none on real data.',
    )
    external_disparities: str = option(
        "",
        "Also evaluate another method's disparities: a .npy (N, H, W) in the test split's order "
        '(monodepth2\'s --ext_disp_to_eval); "" = none.',
    )


def eval_crop(split: str) -> str:
    """The crop of a test split's evaluation (by key): none on eigen_benchmark's annotated maps,
    Garg's on LiDAR ground truth (eigen and split files)."""
    return "none" if split == "eigen_benchmark" else "garg"


def eval_options(evaluate: KittiEvalOptions, scaling: str, stereo_baseline: float) -> EvalOptions:
    """How ``results/kitti_eval.csv`` scores its rows of one scaling ("median" or "stereo"):
    depth 1e-3 (0.1 with sc_depth) .. 80 m, the split's crop, per-image median ratio or the
    fixed factor 0.54 / ``stereo_baseline`` (metres)."""
    return EvalOptions(
        min_depth=0.1 if evaluate.protocol == "sc_depth" else 1e-3,
        max_depth=80.0,
        crop=eval_crop(split_key(evaluate.split)),
        scaling="median" if scaling == "median" else "fixed",
        fixed_scale=NOMINAL_KITTI_BASELINE / stereo_baseline,
    )


def constant_disparities(n_frames: int) -> list[np.ndarray]:
    """The constant-depth baseline (stage "constant"): the same disparity everywhere, (8, 24)
    per frame (any size: it is resized to the ground truth's)."""
    return [np.ones((8, 24), np.float32) for _ in range(n_frames)]


def load_disparities(
    path: Path, n_frames: int, key: str = "kitti.evaluate.external_disparities", fix: str | None = None
) -> np.ndarray:
    """Disparities (N, H, W) of a .npy file in the test split's order, checked; errors name the
    file and what to do: ``fix``, by default (external predictions) how to save them and the
    config key that points to them."""
    fix = fix or (
        f"save them as one float array (N, H, W) in the test split's order, e.g. "
        f"np.save(path, np.stack(disps).astype(np.float32)), and point {key} to it"
    )
    try:
        disps = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputDataError(path, "disparity file not found", fix) from None
    except ValueError as err:  # object arrays and pickles need allow_pickle, which is never used here
        # (numpy's own message suggests loading a pickle unsafely: not advice to pass on)
        what = "an array of Python objects" if "Object arrays" in str(err) else "pickled or other data"
        raise InputDataError(
            path,
            f"is not a plain numeric .npy array: it holds {what}, and files from "
            "outside the workflow are never unpickled",
            fix,
        ) from None
    except OSError as err:
        raise InputDataError(path, f"cannot be read as .npy ({err})", fix) from None
    if not isinstance(disps, np.ndarray) or disps.ndim != 3 or not np.issubdtype(disps.dtype, np.number):
        raise InputDataError(
            path,
            f"holds a {getattr(disps, 'dtype', type(disps))} array of shape "
            f"{getattr(disps, 'shape', '?')}, not (N, H, W) numbers",
            fix,
        )
    if len(disps) != n_frames:
        raise InputDataError(
            path, f"holds {len(disps)} disparity maps for the {n_frames} frames of the test split", fix
        )
    return disps


def evaluate_stage(
    gts: list[np.ndarray],
    disps,
    stage: str,
    evaluate: KittiEvalOptions,
    stereo_baseline: float,
    source: str = "",
    labels: list[np.ndarray] | None = None,
) -> pd.DataFrame:
    """Rows of ``results/kitti_eval.csv`` for one stage: one per scaling in ``evaluate``.

    Args:
        evaluate: the ``kitti.evaluate`` section (split, protocol, scalings).
        stereo_baseline: training baseline of stereo pairs; the "stereo" scaling multiplies
            depths by 0.54 / stereo_baseline (5.4 for the references' 0.1).
        labels: the test frames' trainIds, for ``abs_rel_movable`` (NaN without them).
    Columns: stage, scaling, n_frames, the metrics, abs_rel_movable (abs_rel on the pixels of
    movable classes), the median and relative spread of the applied per-image scale factors, and
    the prediction source.
    """
    rows = []
    for scaling in evaluate.scalings:
        opts = eval_options(evaluate, scaling, stereo_baseline)
        means, ratios = evaluate_split(gts, disps, opts)
        movable = abs_rel_movable(gts, disps, labels, ratios, opts) if labels is not None else float("nan")
        med = float(np.median(ratios))
        rows.append(
            {
                "stage": stage,
                "scaling": scaling,
                "n_frames": len(gts),
                **means,
                "abs_rel_movable": movable,
                "scale_median": med,
                "scale_std": float(np.std(ratios / med)),
                "source": source,
            }
        )
    return pd.DataFrame(rows)
