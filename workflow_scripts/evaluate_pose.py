"""Rule evaluate_pose: ATE and RE of every stage's predicted poses and of the identity-motion
baseline on each odometry sequence -> results/kitti_pose_eval.csv (workflow_scripts/kitti/pose_eval.py)."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.kitti.pose_eval import (
    PoseEvalOptions,
    check_pose_count,
    evaluate_sequence,
    read_poses,
    relative_poses,
)
from workflow_scripts.util import InputDataError, write_table_atomic
from workflow_scripts.util.options import load_options

log = logging.getLogger("evaluate_pose")
IDENTITY = "identity"  # the baseline's stage name: no motion between frames


def load_prediction(path: Path) -> np.ndarray:
    """``next_from_this`` (N-1, 4, 4) of a predict_pose output."""
    with np.load(path, allow_pickle=False) as data:
        if "next_from_this" not in data.files:
            raise InputDataError(path, "holds no next_from_this array", "re-run predict_pose for it")
        return data["next_from_this"].astype(np.float64)


def score_row(stage: str, sequence: str, gt_rel: np.ndarray, pred_rel: np.ndarray,
              opts: PoseEvalOptions) -> dict:
    """One table row: mean and std over the snippets of ATE (m) and RE (rad), median scale."""
    errors = evaluate_sequence(gt_rel, pred_rel, opts.snippet, opts.protocol)
    ate, re_ = errors["ate"], errors["re"]
    return {"stage": stage, "sequence": sequence, "protocol": opts.protocol, "n_frames": len(gt_rel) + 1,
            "n_snippets": len(ate), "ate_mean": ate.mean(), "ate_std": ate.std(), "re_mean": re_.mean(),
            "re_std": re_.std(), "scale_median": float(np.median(errors["scale"]))}


def main(root: Path, sequences: list[str], runs: list[tuple[str, str]], predictions: list[Path],
         opts: PoseEvalOptions, out: Path) -> pd.DataFrame:
    """Score each ``(stage, sequence)`` of ``runs`` (its npz in ``predictions``, same order) and the
    identity baseline of every sequence against ``<root>/poses/<sequence>.txt``; write ``out``."""
    gt = {}
    for seq in sequences:
        poses_path = root / "poses" / f"{seq}.txt"
        gt[seq] = (poses_path, relative_poses(read_poses(poses_path)))
    rows = []
    for (stage, seq), path in zip(runs, predictions, strict=True):
        poses_path, gt_rel = gt[seq]
        pred_rel = load_prediction(path)
        check_pose_count(poses_path, len(gt_rel) + 1, len(pred_rel) + 1, path)
        rows.append(score_row(stage, seq, gt_rel, pred_rel, opts))
    for seq in sequences:
        gt_rel = gt[seq][1]
        rows.append(score_row(IDENTITY, seq, gt_rel, np.tile(np.eye(4), (len(gt_rel), 1, 1)), opts))
    table = pd.DataFrame(rows)
    write_table_atomic(out, table, log)
    return table


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(
        Path(smk.params.root),
        list(smk.params.sequences),
        [tuple(r) for r in smk.params.runs],
        [Path(p) for p in smk.input.predictions],
        load_options(PoseEvalOptions, smk.params.options, "kitti.pose_eval"),
        Path(smk.output[0]),
    )
