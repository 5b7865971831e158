"""Rule predict_endo_constant: the constant-depth baseline of the endoscopy branch, in the
prediction format of the trained stages (results/endo/pred/constant/<seq>/depth.npz)."""

import logging
from pathlib import Path

from workflow_scripts.endo.evaluate import constant_prediction
from workflow_scripts.endo.pointcloud import save_predicted_depth
from workflow_scripts.endo.sparse import load_sfm_data

log = logging.getLogger("predict_endo_constant")


def main(sfm_data: Path, out: Path) -> None:
    pred = constant_prediction(load_sfm_data(sfm_data))
    save_predicted_depth(out, pred)
    log.info("%s: %d frames %s, depth %.4g..%.4g SfM units", out, *pred.depth.shape[:1],
             list(pred.depth.shape[1:]), float(pred.depth.min()), float(pred.depth.max()))


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.sfm_data), Path(smk.output[0]))
