# Shared helpers of the rules: config validation, data-source switches, target lists.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, schema="schemas/config.schema.yaml")

# Rule scripts import the project's packages (workflow_scripts, models): make the workflow
# root importable for every job, also under SLURM or conda deployments.
# (PYTHONPATH is set here, not required from the user, hence no `envvars:`.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH", "")) if p
    )
)

USE_DEMO_KITTI = config["kitti"]["root"] == ""
USE_DEMO_ENDO = config["endoscopy"]["root"] == ""


def kitti_root():
    """KITTI raw root the driving branch reads: the configured one or the demo tree."""
    return config["demo"]["kitti"]["root"] if USE_DEMO_KITTI else config["kitti"]["root"]


def endo_root():
    """Endoscopy input folder: the configured one or the demo folder."""
    return config["demo"]["endoscopy"]["root"] if USE_DEMO_ENDO else config["endoscopy"]["root"]


def final_targets():
    """Targets of the `all` rule: what exists of each branch for the configured data."""
    targets = []
    if USE_DEMO_KITTI:
        targets.append(kitti_root())
    if USE_DEMO_ENDO:
        targets.append(endo_root())
    targets += endo_prep_targets()  # rules/endoscopy.smk
    return targets
