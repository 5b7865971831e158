"""Rule kitti_seg_eval_table: results/kitti_seg_eval.csv (workflow_scripts/kitti/semantic_eval.py)."""

import logging
from pathlib import Path

import numpy as np

from workflow_scripts.kitti.semantic_eval import load_test_labels, seg_eval_table
from workflow_scripts.util import atomic_file

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    labels = load_test_labels(Path(smk.input.labels))
    preds = {stage: np.load(p, allow_pickle=False)
             for stage, p in zip(smk.params.stages, smk.input.preds, strict=True)}
    table = seg_eval_table(labels, preds)
    with atomic_file(Path(smk.output[0])) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    logging.getLogger("kitti_seg_eval").info("\n%s", table[["stage", "miou", "pixel_accuracy", "n_classes"]]
                                             .to_string(index=False))
