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


# ---------------------------------------------------------------- driving branch: data preparation
# Inputs and targets of rules/kitti.smk (test splits, ground truth, frame filter, train/val
# lists, depth hints, optional JPEG conversion).
KITTI = config["kitti"]
KITTI_SPLITS_DIR = os.path.join(workflow.basedir, "workflow_scripts", "kitti", "splits")
KITTI_JPEG = KITTI["jpeg"]["convert"]


def _list_drives(*lists):
    """Drive folders (<date>/<drive>) named in shipped split lists (relative to the splits dir)."""
    drives = set()
    for rel in lists:
        with open(os.path.join(KITTI_SPLITS_DIR, rel)) as f:
            drives.update(line.split()[0] for line in f if line.strip())
    return sorted(drives)


def kitti_split_source():
    """'filtered' (frame filter -> lists) or 'standard' (the references' lists)."""
    source = KITTI["splits"]["source"]
    return ("filtered" if USE_DEMO_KITTI else "standard") if source == "auto" else source


def kitti_test_drives():
    """Drives of the test splits (never trained on)."""
    if USE_DEMO_KITTI:
        return sorted(KITTI["splits"]["demo_test_drives"])
    return _list_drives(*(f"{s}/test_files.txt" for s in KITTI["gt"]["splits"]))


def kitti_train_drives():
    """Drives whose frames may be trained on (one hint job and one filter job each)."""
    if USE_DEMO_KITTI:
        demo = [f"{d['date']}/{d['date']}_drive_{d['drive']}_sync" for d in config["demo"]["kitti"]["drives"]]
        return [d for d in demo if d not in kitti_test_drives()]
    standard = KITTI["splits"]["standard"]
    return _list_drives(f"{standard}/train_files.txt", f"{standard}/val_files.txt")


def kitti_image_root(wildcards=None):
    """Where the colour images are read: the JPEG mirror when converting, else the raw tree."""
    return "results/kitti/jpeg" if KITTI_JPEG else kitti_root()


def kitti_raw_root(wildcards=None):
    """The raw tree (calibration, scans), as a rule parameter."""
    return kitti_root()


def kitti_image_ext(wildcards=None):
    """File type of the colour images that the stages read."""
    return "jpg" if KITTI_JPEG else KITTI["image_ext"]


def kitti_raw_data(wildcards=None):
    """Input on the raw tree: the demo folder (so that the DAG generates it), nothing for real data."""
    return [kitti_root()] if USE_DEMO_KITTI else []


def kitti_drive_images(wildcards):
    """Input on one drive's images: its JPEG mirror when converting, else the raw tree."""
    if KITTI_JPEG:
        return [f"results/kitti/jpeg/{wildcards.date}/{wildcards.drive}"]
    return kitti_raw_data()


def kitti_jpeg_drives(drives):
    """The JPEG mirrors of ``drives`` when converting (an input), else nothing."""
    return [f"results/kitti/jpeg/{d}" for d in drives] if KITTI_JPEG else []


def kitti_prep_targets():
    """Everything the data preparation builds for the configured data."""
    gt = KITTI["gt"]
    targets = [f"results/kitti/gt/{s}.npz" for s in gt["splits"]]
    if gt["monodepth2_npz"]:
        targets += [f"results/kitti/gt/{s}_gt_depths.npz" for s in gt["splits"]]
    targets += ["results/kitti/splits/train_files.txt", "results/kitti/splits/val_files.txt"]
    targets += [f"results/kitti/depth_hints/{d}" for d in kitti_train_drives()]
    if KITTI_JPEG:
        targets += [f"results/kitti/jpeg/{d}" for d in kitti_train_drives() + kitti_test_drives()]
    return targets


def endo_root():
    """Endoscopy input folder: the configured one or the demo folder."""
    return config["demo"]["endoscopy"]["root"] if USE_DEMO_ENDO else config["endoscopy"]["root"]


def final_targets():
    """Targets of the `all` rule: what exists of each branch for the configured data."""
    targets = []
    if USE_DEMO_KITTI:
        targets.append(kitti_root())
    targets += kitti_prep_targets()  # rules/kitti.smk (also what the evaluation does not need)
    targets.append("results/kitti_eval.csv")  # rules/evaluate.smk
    if USE_DEMO_ENDO:
        targets.append(endo_root())
    targets += endo_prep_targets()  # rules/endoscopy.smk
    if USE_DEMO_ENDO or os.path.isfile(endo_ct_surface()):  # real data: only with a CT
        targets.append("results/endo_eval.csv")  # rules/endo_eval.smk
    return targets
