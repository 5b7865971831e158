"""Training stages of both branches (rules train_teacher, train_student, finetune).

Both branches' modules (:mod:`~workflow_scripts.training.kitti`, :mod:`~workflow_scripts.training.endo`)
expose the same ``run(stage, common, section, inputs, out_model, *, seed, threads)``; the rule's
``{branch}`` wildcard picks the module and the typed sections in :data:`BRANCHES`, once. A stage
whose ``common.processes`` is above 1 runs data-parallel under torchrun
(:mod:`~workflow_scripts.training.launch`).
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path

from workflow_scripts.training import endo_options as eopt
from workflow_scripts.training import options as opt
from workflow_scripts.training.slurm_nodes import slurm_allocation
from workflow_scripts.training.stage import StageInputs
from workflow_scripts.util.gpu import assign_gpu
from workflow_scripts.util.options import load_options

__all__ = ["BRANCHES", "run_stage", "main_from_snakemake"]
log = logging.getLogger(__name__)

# branch wildcard -> (module, config section, common section class, stage section classes)
BRANCHES = {
    "kitti": ("workflow_scripts.training.kitti", "kitti.train", opt.KittiCommon,
              {"teacher": opt.KittiTeacher, "student": opt.KittiStudent, "finetune": opt.KittiFinetune}),
    "endo": ("workflow_scripts.training.endo", "endoscopy.train", eopt.EndoCommon,
             {"teacher": eopt.EndoTeacher, "student": eopt.EndoStudent, "finetune": eopt.EndoFinetune}),
}


def run_stage(branch: str, stage: str, train: dict, inputs: StageInputs, out_model: Path, *, seed: int,
              threads: int, gpus: int = 1) -> dict:
    """Train ``stage`` of ``branch`` on GPUs of its own when there are, else on the CPU.

    With ``common.nodes`` M > 1 it runs on M SLURM nodes x ``common.processes`` ranks
    (:mod:`workflow_scripts.training.slurm_nodes`). With ``common.processes`` N > 1 (and not
    already a rank of a launch) the stage runs on N processes under torchrun
    (:func:`~workflow_scripts.training.launch.launch`), one GPU each when the job holds GPUs;
    inside a launch (a rank) the GPUs were assigned by the rule's process and ``gpus`` is ignored.

    Args:
        train: the rule's ``train`` param: {"common": the branch's shared section, "section": the
            stage's section} as plain config mappings.
        inputs: every path the stage reads (the rule's inputs).
        gpus: the job's ``gpu`` resource (GPUs to hold: the stage's processes, or 1).
    """
    # imported here: each rank runs `python -m workflow_scripts.training.launch`, which runpy
    # warns about when this package has imported that module already
    from workflow_scripts.training.launch import LaunchRequest, in_distributed_launch, launch

    module_name, where, common_cls, stage_cls = BRANCHES[branch]
    common = load_options(common_cls, train["common"], f"{where}.common")
    section = load_options(stage_cls[stage], train["section"], f"{where}.{stage}")
    if in_distributed_launch():
        return importlib.import_module(module_name).run(stage, common, section, inputs, out_model, seed=seed,
                                                        threads=threads)
    start = time.perf_counter()
    if common.nodes > 1:  # the GPUs are SLURM's, per node; the ranks find theirs (cuda:<LOCAL_RANK>)
        allocation = slurm_allocation(common.nodes, f"{where}.common")
        request = LaunchRequest.make(branch, stage, train, inputs, out_model, seed=seed, threads=threads)
        info = launch(request, common.processes, allocation=allocation,
                      cpus_per_node=common.processes * (common.threads + common.workers))
        log.info("%s/%s done in %.1f s: %s", branch, stage, time.perf_counter() - start, info)
        return info
    with assign_gpu(gpus) as gpu:
        log.info("%s/%s on GPU %s (%s)", branch, stage, gpu.devices or "none", gpu.source)
        if common.processes > 1:
            if gpu.devices and len(gpu.devices) != common.processes:
                raise ValueError(
                    f"{where}.common.processes is {common.processes} but the job holds GPUs "
                    f"{list(gpu.devices)}: give the rule gpu={common.processes} (rules/train.smk does; check "
                    "--set-resources and the profile's set-resources)")
            request = LaunchRequest.make(branch, stage, train, inputs, out_model, seed=seed, threads=threads)
            info = launch(request, common.processes)
        else:
            info = importlib.import_module(module_name).run(stage, common, section, inputs, out_model,
                                                            seed=seed, threads=threads)
    log.info("%s/%s done in %.1f s: %s", branch, stage, time.perf_counter() - start, info)
    return info


def main_from_snakemake(smk, stage: str) -> dict:
    """Body of the three training rule scripts: log to the rule's log, train, save."""
    from workflow_scripts.util.smk import setup_logging

    setup_logging(smk.log[0])
    inputs = StageInputs.from_rule(dict(smk.input.items()), smk.params.paths)
    return run_stage(smk.wildcards.branch, stage, smk.params.train, inputs, Path(smk.output.model),
                     seed=smk.params.seed, threads=smk.params.train["common"]["threads"],
                     gpus=int(smk.resources.get("gpu", 1)))
