"""Training stages of both branches, assembled from rule params (see kitti.py, endo.py).

:func:`run_stage` is what the rule scripts train_teacher / train_student / finetune call.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from workflow_scripts.util.gpu import assign_gpu

log = logging.getLogger(__name__)


def run_stage(branch: str, stage: str, params: dict, inputs: dict, out_model: Path, *, seed: int,
              threads: int, gpus: int = 1) -> dict:
    """Train ``stage`` of ``branch`` on a GPU of its own when there is one, else on the CPU.

    Args:
        params: the rule's params: ``train`` = {preset, section, common} and the branch's paths.
        inputs: the rule's named inputs (split, hints, previous model, ...).
    """
    from models.training.stage import StageConfig

    train = params["train"]
    start = time.perf_counter()
    with assign_gpu(gpus) as gpu:
        log.info("%s/%s on GPU %s (%s)", branch, stage, gpu.devices or "none", gpu.source)
        if branch == "kitti":
            from workflow_scripts.training import kitti

            cfg = StageConfig.from_params(branch, stage, train["preset"], train["section"])
            hints = Path("results/kitti/depth_hints") if inputs.get("hints") else None
            paths = params["paths"]
            info = kitti.run(cfg, train["common"], raw_root=Path(paths["raw_root"]),
                             image_root=Path(paths["image_root"]), image_ext=paths["image_ext"],
                             train_split=Path(inputs["split"]), hints_root=hints,
                             previous=Path(inputs["previous"]) if inputs.get("previous") else None,
                             out_model=out_model, seed=seed, threads=threads)
        else:
            from workflow_scripts.training import endo

            info = endo.run(train, stage, sfm_data=[Path(p) for p in inputs["sfm_data"]],
                            frames=[Path(p) for p in inputs["frames"]],
                            previous=Path(inputs["previous"]) if inputs.get("previous") else None,
                            out_model=out_model, seed=seed, threads=threads)
    log.info("%s/%s done in %.1f s: %s", branch, stage, time.perf_counter() - start, info)
    return info


def main_from_snakemake(smk, stage: str) -> dict:
    """Body of the three training rule scripts: log to the rule's log, train, save."""
    from workflow_scripts.util.smk import setup_logging

    setup_logging(smk.log[0])
    return run_stage(smk.wildcards.branch, stage, dict(smk.params.items()), dict(smk.input.items()),
                     Path(smk.output.model), seed=smk.params.seed, threads=smk.threads,
                     gpus=int(smk.resources.get("gpu", 1)))
