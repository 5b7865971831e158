"""Rule predict_endo_depth: depth.npz of one sequence and stage, in SfM world units
(format in the rule's docstring, rules/endo_predict.smk; library: workflow_scripts/training/endo.py)."""

import logging
from pathlib import Path

import numpy as np

from workflow_scripts.training.endo import predict
from workflow_scripts.util import atomic_file

log = logging.getLogger("predict_endo_depth")


def main(model: Path, sfm_data: Path, frames: Path, out: Path, threads: int) -> dict:
    from workflow_scripts.util.gpu import assign_gpu

    with assign_gpu(1):
        arrays = predict(model, sfm_data, frames, threads=threads)
    with atomic_file(out) as tmp:
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    d = arrays["depth"][:, arrays["mask"] > 0]
    log.info("%s: %d frames %s, depth %.4g .. %.4g (median %.4g) SfM units", out, len(arrays["depth"]),
             arrays["depth"].shape[1:], d.min(), d.max(), np.median(d))
    return arrays


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.model), Path(smk.input.sfm_data), Path(smk.input.frames), Path(smk.output[0]),
         smk.threads)
