"""Rule evaluate_depth: Eigen metrics of one stage's disparities, one CSV row per scaling
(workflow_scripts/kitti/evaluate.py)."""

import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.kitti.evaluate import (
    METRICS,
    KittiEvalOptions,
    constant_disparities,
    evaluate_stage,
    load_disparities,
)
from workflow_scripts.kitti.gt_export import load_gt
from workflow_scripts.kitti.semantic_eval import load_test_labels
from workflow_scripts.util import atomic_file
from workflow_scripts.util.options import load_options

log = logging.getLogger("evaluate_depth")


def main(
    gt_path: Path,
    disps_path: Path | None,
    stage: str,
    evaluate: KittiEvalOptions,
    stereo_baseline: float,
    out: Path,
    labels_path: Path | None = None,
) -> pd.DataFrame:
    gts = list(load_gt(gt_path).maps())
    labels = load_test_labels(labels_path) if labels_path else None
    if disps_path is None:  # the constant-depth baseline: the same disparity everywhere
        disps = constant_disparities(len(gts))
    else:
        disps = load_disparities(disps_path, len(gts))
    table = evaluate_stage(gts, disps, stage, evaluate, stereo_baseline, source=str(disps_path or "constant"),
                           labels=labels)
    with atomic_file(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    log.info("%s:\n%s", stage, table[["scaling", "n_frames", *METRICS]].to_string(index=False))
    return table


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    disps = Path(smk.input.disps[0]) if len(smk.input.disps) else None  # [] = constant baseline
    main(
        Path(smk.input.gt),
        disps,
        smk.wildcards.stage,
        load_options(KittiEvalOptions, smk.params.evaluate, "kitti.evaluate"),
        smk.params.stereo_baseline,
        Path(smk.output[0]),
        Path(smk.input.labels) if smk.input.get("labels") else None,
    )
