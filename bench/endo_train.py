"""Endoscopy training stages on the demo: do the depths beat a constant depth on the SfM points?

Scores ``results/endo/pred/<stage>/<seq>/depth.npz`` (as rule predict_endo_depth writes it)
against the SfM sparse depths of ``results/endo/<seq>/sfm_data.npz`` with the workflow's own
metric, ``workflow_scripts.endo.evaluate.sparse_depth_metrics``, the function of rule
evaluate_endo_depth: per frame, the prediction inside its mask is median-scaled to the frame's
sparse samples, then abs_rel and delta < 1.25; frames are averaged. The numbers printed are
therefore the ``abs_rel`` and ``delta1`` columns of ``results/endo_eval.csv`` for the same
depth.npz. Beside them, the constant-depth baseline (``constant_prediction``: every frame at its
median sparse depth), the table's ``constant`` row.

usage: python -m bench.endo_train [STAGE ...]   (in the workflow's folder, after the
       predict_endo_depth jobs ran; PYTHONPATH=<project> when that folder is elsewhere)
"""

from __future__ import annotations

import sys
from pathlib import Path

from workflow_scripts.endo.evaluate import constant_prediction, sparse_depth_metrics
from workflow_scripts.endo.pointcloud import load_predicted_depth
from workflow_scripts.endo.sparse import load_sfm_data


def scores(depth_npz: Path, sfm_data: Path) -> tuple[dict, dict]:
    """Metrics of a depth.npz and of the constant baseline on the same sequence, as
    ``sparse_depth_metrics`` returns them (sparse_frames, sparse_samples, abs_rel, delta1)."""
    sfm = load_sfm_data(sfm_data)
    return (sparse_depth_metrics(load_predicted_depth(depth_npz), sfm),
            sparse_depth_metrics(constant_prediction(sfm), sfm))


def main(stages: list[str], root: Path = Path(".")) -> None:
    for stage in stages:
        for npz in sorted((root / "results" / "endo" / "pred" / stage).glob("*/depth.npz")):
            seq = npz.parent.name
            s, c = scores(npz, root / "results" / "endo" / seq / "sfm_data.npz")
            print(f"{stage:9s} {seq}: abs_rel {s['abs_rel']:.4f} delta1 {s['delta1']:.3f} "
                  f"({s['sparse_frames']} frames, {s['sparse_samples']} samples)   "
                  f"constant: abs_rel {c['abs_rel']:.4f} delta1 {c['delta1']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["teacher", "student", "finetune"])
