# Shared by the rule files. The configuration (the demo overlay, then validation, which fills
# in every default), the data roots of both branches, the targets of `all`, and the input and
# parameter functions of every rule file, one section per file (the rule files hold rules only).
import functools
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# Rule scripts and this file import the project's packages (workflow_scripts, models): make the
# workflow root importable here and, through PYTHONPATH, in every job (also under SLURM or conda).
sys.path.insert(0, workflow.basedir)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH", "")) if p)
)

from workflow_scripts.config.overlay import apply_demo_overlay, read_yaml
from workflow_scripts.config.resolve import training_seed

# A branch with an empty root runs on the demo data, with config/demo.yaml's small settings
# UNDER what the user set; validation then adds the defaults (docs/configuration.md).
ON_DEMO = apply_demo_overlay(config, read_yaml(os.path.join(workflow.basedir, "config", "demo.yaml")))
try:
    validate(config, schema="schemas/config.schema.yaml")
except WorkflowError as err:  # Snakemake's message prints the whole schema after the error
    from workflow_scripts.config.resolve import first_error

    raise WorkflowError(
        f"{first_error(config) or err}. See docs/configuration.md; "
        "`python -m workflow_scripts.config check <your config files>` names the file"
    ) from None

for _key, _root in (("kitti.root", config["kitti"]["root"]), ("endoscopy.root", config["endoscopy"]["root"])):
    if _root and not os.path.isdir(_root):
        raise WorkflowError(
            f"config {_key} = {_root!r}: no such folder. Set {_key} to your data folder "
            f'(see docs/configuration.md), or to "" for the embedded demo'
        )

KITTI = config["kitti"]
ENDO = config["endoscopy"]
DEMO = config["demo"]
REPORT = config["report"]
USE_DEMO_KITTI = "kitti" in ON_DEMO
USE_DEMO_ENDO = "endoscopy" in ON_DEMO
TRAIN_STAGES = ["teacher", "student", "finetune"]


def kitti_root(wildcards=None):
    """KITTI raw root the driving branch reads (calibration, scans): the configured one or the
    demo tree; also a params function."""
    return DEMO["kitti"]["root"] if USE_DEMO_KITTI else KITTI["root"]


def endo_root():
    """Endoscopy input folder: the configured one or the demo folder."""
    return DEMO["endoscopy"]["root"] if USE_DEMO_ENDO else ENDO["root"]


def final_targets():
    """Targets of the `all` rule: what each branch leads to for the configured data."""
    targets = [kitti_root()] if USE_DEMO_KITTI else []
    targets += kitti_prep_targets()  # kitti_prep.smk (also what the evaluation does not need)
    targets += ["results/kitti_eval.csv", *kitti_seg_targets()]  # kitti_eval.smk, semantic.smk
    targets += kitti_pose_targets()  # kitti_pose.smk: results/kitti_pose_eval.csv with odometry data
    targets += kitti_predict_targets()  # kitti_predict.smk: kitti.predict.inputs (the demo: its test drive)
    if USE_DEMO_ENDO:
        targets.append(endo_root())
    targets += endo_prep_targets()  # endo_prep.smk
    if endo_sequences():
        targets.append("results/endo_eval.csv")  # endo_eval.smk
    targets += endo_new_video_targets()  # endoscopy.predict.videos
    return targets


# ----------------------------------------------- driving branch: data preparation (kitti_prep.smk)
from workflow_scripts.kitti import hint_shards, split_config
from workflow_scripts.kitti.split_files import STANDARD_DIR, read_split
from workflow_scripts.util import InputDataError

KITTI_JPEG = KITTI["jpeg"]["convert"]
# Test splits by key (the standard name or a split file's stem, docs/beyond_eigen.md): those with
# exported ground truth, then the evaluated one. On real data every configured split file is
# checked against the tree here, before any job runs.
try:
    KITTI_TEST_SPLITS = split_config.keyed_test_splits([*KITTI["gt"]["splits"], KITTI["evaluate"]["split"]])
    KITTI_EVAL_SPLIT = split_config.split_key(KITTI["evaluate"]["split"])
    if not USE_DEMO_KITTI:
        split_config.check_configured_splits(
            KITTI_TEST_SPLITS.values(),
            KITTI["splits"]["standard"],
            Path(KITTI["root"]),
            Path(KITTI["root"]),
            KITTI["image_ext"],
        )
except InputDataError as err:
    raise WorkflowError(str(err)) from None
KITTI_SPLIT_WILDCARD = "|".join(re.escape(key) for key in KITTI_TEST_SPLITS)


@functools.cache  # input functions ask many times; the lists (up to 45 k lines) are read once
def _list_drives(*lists):
    """Drive folders (<date>/<drive>) named in split lists (paths)."""
    return sorted({line.folder for path in lists for line in read_split(path)})


def kitti_test_split_list(key):
    """The list of a test split (by key): a split file, or the shipped list of a standard name."""
    path = split_config.split_file(KITTI_TEST_SPLITS[key])
    return path if path is not None else STANDARD_DIR / key / "test_files.txt"


def kitti_split_file_input(wildcards):
    """Input of make_test_split: the split file of a key that names one (edits re-run it)."""
    path = split_config.split_file(KITTI_TEST_SPLITS[wildcards.split])
    return [str(path)] if path is not None else []


def kitti_split_source():
    """'filtered' (frame filter -> lists) or 'standard' (the references' lists)."""
    source = KITTI["splits"]["source"]
    return ("filtered" if USE_DEMO_KITTI else "standard") if source == "auto" else source


def kitti_test_drives():
    """Drives of the test splits (never trained on)."""
    files = [split_config.split_file(entry) for entry in KITTI_TEST_SPLITS.values()]
    if USE_DEMO_KITTI:
        return sorted(set(DEMO["kitti"]["test_drives"]) | set(_list_drives(*filter(None, files))))
    return _list_drives(*(kitti_test_split_list(key) for key in KITTI_TEST_SPLITS))


def kitti_train_drives():
    """Drives whose frames may be trained on (one hint job and one filter job each)."""
    if USE_DEMO_KITTI:
        demo = [f"{d['date']}/{d['date']}_drive_{d['drive']}_sync" for d in DEMO["kitti"]["drives"]]
        return [d for d in demo if d not in kitti_test_drives()]
    folder = split_config.train_split_folder(KITTI["splits"]["standard"])
    return _list_drives(folder / "train_files.txt", folder / "val_files.txt")


@functools.cache  # asked by every shard's resources and its drive's merge: one listing a drive
def kitti_drive_frames(folder):
    """Frames of a training drive (<date>/<drive>), known before any job: the demo's setting, or
    the raw tree's image_02 (a missing drive counts 0: one empty shard)."""
    if USE_DEMO_KITTI:
        for d in DEMO["kitti"]["drives"]:
            if f"{d['date']}/{d['date']}_drive_{d['drive']}_sync" == folder:
                return d["frames"]
    return hint_shards.count_drive_frames(Path(kitti_root()) / folder)


def kitti_hint_shards(wildcards):
    """The hint shards of one drive (merge_depth_hints' inputs), kitti.depth_hints.shard_frames each."""
    folder = f"{wildcards.date}/{wildcards.drive}"
    n = hint_shards.shard_count(kitti_drive_frames(folder), KITTI["depth_hints"]["shard_frames"])
    return [f"results/kitti/depth_hints/shards/{folder}/{k}" for k in range(n)]


def kitti_image_root(wildcards=None):
    """Where the colour images are read: the JPEG mirror when converting, else the raw tree."""
    return "results/kitti/jpeg" if KITTI_JPEG else kitti_root()


def kitti_image_ext(wildcards=None):
    """File type of the colour images that the stages read."""
    return "jpg" if KITTI_JPEG else KITTI["image_ext"]


def kitti_raw_data(wildcards=None):
    """Input on the raw tree: the demo folder (so that the DAG generates it), nothing for real data."""
    return [kitti_root()] if USE_DEMO_KITTI else []


def kitti_drive_images(wildcards):
    """Input on one drive's images: its JPEG mirror when converting, else the raw tree."""
    return [f"results/kitti/jpeg/{wildcards.date}/{wildcards.drive}"] if KITTI_JPEG else kitti_raw_data()


def kitti_jpeg_drives(drives):
    """The JPEG mirrors of ``drives`` when converting (an input), else nothing."""
    return [f"results/kitti/jpeg/{d}" for d in drives] if KITTI_JPEG else []


def kitti_prep_targets():
    """Everything the data preparation builds for the configured data."""
    gt = KITTI["gt"]
    keys = [split_config.split_key(s) for s in gt["splits"]]
    targets = [f"results/kitti/gt/{s}.npz" for s in keys]
    if gt["monodepth2_npz"]:
        targets += [f"results/kitti/gt/{s}_gt_depths.npz" for s in keys]
    targets += ["results/kitti/splits/train_files.txt", "results/kitti/splits/val_files.txt"]
    targets += [f"results/kitti/depth_hints/{d}" for d in kitti_train_drives()]
    if KITTI_JPEG:
        targets += [f"results/kitti/jpeg/{d}" for d in kitti_train_drives() + kitti_test_drives()]
    return targets


# ---------------------------------------------------- training stages of both branches (train.smk)
BRANCH_CONFIG = {"kitti": "kitti", "endo": "endoscopy"}
PREVIOUS_STAGE = {"student": "teacher", "finetune": "student"}


def train_inputs(stage):
    """Input function of a training stage: the branch's data and the previous stage's model."""

    def inputs(wildcards):
        if wildcards.branch == "kitti":
            files = {
                "split": "results/kitti/splits/train_files.txt",
                "val_split": "results/kitti/splits/val_files.txt",
                "raw": kitti_raw_data(),
                "images": kitti_jpeg_drives(kitti_train_drives()),
            }
            if stage == "teacher" and KITTI["train"]["teacher"]["hints"]:
                files["hints"] = [f"results/kitti/depth_hints/{d}" for d in kitti_train_drives()]
        else:  # the training side's sequences, sfm_data and frames in the same order
            files = {
                "sfm_data": expand("results/endo/{seq}/sfm_data.npz", seq=endo_train_sequences()),
                "frames": [endo_frames(seq) for seq in endo_train_sequences()],
            }
        if stage in PREVIOUS_STAGE:
            files["previous"] = f"results/{wildcards.branch}/train/{PREVIOUS_STAGE[stage]}/model.pt"
        return files

    return inputs


def train_params(stage):
    """Params of a training stage (rerun triggers): its branch's common section and its own."""

    def params(wildcards):
        train = config[BRANCH_CONFIG[wildcards.branch]]["train"]
        return {"common": train["common"], "section": train[stage]}

    return params


def train_threads(wildcards):
    """Cores a training stage reserves: its PyTorch threads (<branch>.train.common.threads)."""
    return config[BRANCH_CONFIG[wildcards.branch]]["train"]["common"]["threads"]


def train_paths(wildcards):
    """Data locations a stage reads that are not files of the DAG (the KITTI raw tree)."""
    if wildcards.branch == "kitti":
        return {
            "raw_root": kitti_root(),
            "image_root": kitti_image_root(),
            "image_ext": kitti_image_ext(),
            "labels": kitti_labels_root(),
            "labels_split": KITTI["train"]["common"]["labels_split"],
        }
    return {}


# -------------------------------------- driving branch: prediction and evaluation (kitti_eval.smk)
def kitti_eval_stages():
    """Rows of results/kitti_eval.csv: kitti.evaluate.stages (+ masking controls), external."""
    chosen = list(KITTI["evaluate"]["stages"])  # later stages of the chain are not trained
    stages = kitti_stage_order(chosen + kitti_masking_controls(chosen))
    return stages + ["external"] * bool(KITTI["evaluate"]["external_disparities"])


def kitti_eval_disparities(wildcards):
    """What evaluate_depth scores: a stage's disparities, none (constant), the external file."""
    if wildcards.stage == "constant":
        return []
    if wildcards.stage == "external":
        return [KITTI["evaluate"]["external_disparities"]]
    return [f"results/kitti/pred/{wildcards.stage}/{KITTI_EVAL_SPLIT}_disps.npy"]


def kitti_report_disparities(wildcards=None):
    """The disparities of every row of results/kitti_eval.csv but the constant baseline, named
    by stage (plot_kitti_depth, plot_kitti_per_frame)."""
    external = KITTI["evaluate"]["external_disparities"]
    return {
        s: external if s == "external" else f"results/kitti/pred/{s}/{KITTI_EVAL_SPLIT}_disps.npy"
        for s in kitti_eval_stages()
        if s != "constant"
    }


# --------------------------------------------------------------------- report figures (report.smk)
def endo_report_parts():
    """Endoscopy parts of the report, keyed on the config (never on files that exist): none
    without report.endoscopy; else 'sfm', 'training', 'depth', and 'registration' when
    results/endo_eval.csv is a target (figures for the sequences with a CT). The DAG requires their inputs."""
    if not REPORT["endoscopy"]:
        return set()
    parts = {"sfm", "training", "depth"}
    if "results/endo_eval.csv" in final_targets():
        parts.add("registration")
    return parts


def report_targets():
    """Every figure (and table) of the report for the configured data."""
    targets = ["results/kitti/report/depth_frames.png", "results/kitti/report/per_frame_abs_rel.png"]
    targets += kitti_semantic_report()
    targets += ["results/kitti/report/training_curves.png", "results/kitti/report/eval_metrics.png"]
    # the evaluation tables as HTML pages (eval_table_html): the seg and pose ones when they are targets
    kitti_tables = ["results/kitti_eval.csv", *kitti_seg_targets(), *kitti_pose_targets()]
    targets += [t.replace("results/", "results/kitti/report/").replace(".csv", ".html") for t in kitti_tables]
    parts = endo_report_parts()
    seqs = endo_sequences()
    if "sfm" in parts:
        targets += expand("results/endo/report/sfm/{seq}.png", seq=seqs)
        targets.append("results/endo/report/sfm_summary.csv")
    if "training" in parts:
        targets.append("results/endo/report/training_curves.png")
    if "depth" in parts:
        targets += expand("results/endo/report/depth/{stage}/{seq}.png", stage=TRAIN_STAGES, seq=seqs)
    if "registration" in parts:
        registered = endo_registered_sequences()
        targets += expand("results/endo/report/registration/{seq}_residuals.png", seq=registered)
        targets += expand(
            "results/endo/report/registration/{stage}/{seq}_on_ct.png",
            stage=endo_eval_stages(),
            seq=registered,
        )
        targets += ["results/endo/report/eval_metrics.png", "results/endo/report/endo_eval.html"]
    return targets


def report_histories(wildcards):
    """history.csv of every training stage of a branch (plot_training_curves)."""
    return expand("results/{branch}/train/{stage}/history.csv", branch=wildcards.branch, stage=TRAIN_STAGES)
