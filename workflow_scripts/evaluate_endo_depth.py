"""Rule evaluate_endo_depth: a stage's depth against the SfM sparse points of a sequence
(abs_rel, delta < 1.25 after per-frame median scaling; workflow_scripts/endo/evaluate.py)."""

import json
import logging
from pathlib import Path

from workflow_scripts.endo.evaluate import sparse_depth_metrics
from workflow_scripts.endo.pointcloud import load_predicted_depth
from workflow_scripts.endo.sparse import load_sfm_data
from workflow_scripts.util import write_text_atomic

log = logging.getLogger("evaluate_endo_depth")


def main(depth: Path, sfm_data: Path, out: Path) -> dict:
    metrics = sparse_depth_metrics(load_predicted_depth(depth), load_sfm_data(sfm_data))
    write_text_atomic(out, json.dumps(metrics, indent=2) + "\n")
    log.info("%s: %s", depth, metrics)
    return metrics


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.depth), Path(smk.input.sfm_data), Path(smk.output[0]))
