# Input and parameter functions of the training, prediction and evaluation rules
# (rules/train.smk, rules/evaluate.smk). The branch wildcard is "kitti" or "endo".
from snakemake.exceptions import WorkflowError

TRAIN_STAGES = ["teacher", "student", "finetune"]
PREVIOUS_STAGE = {"student": "teacher", "finetune": "student"}
BRANCH_CONFIG = {"kitti": "kitti", "endo": "endoscopy"}


def train_section(branch):
    """The `train` section of a branch's config."""
    return config[BRANCH_CONFIG[branch]]["train"]


def train_preset(branch):
    """The preset block selected by <branch>.train.preset."""
    train = train_section(branch)
    if train["preset"] not in train["presets"]:
        raise WorkflowError(
            f"config: {BRANCH_CONFIG[branch]}.train.preset is '{train['preset']}', "
            f"which is not one of the blocks under presets: {sorted(train['presets'])}"
        )
    return train["presets"][train["preset"]]


def train_inputs(stage):
    """Input function of a training stage: data of the branch and the previous model."""

    def inputs(wildcards):
        files = {}
        if wildcards.branch == "kitti":
            files["split"] = "results/kitti/splits/train_files.txt"
            files["raw"] = kitti_raw_data()
            files["images"] = kitti_jpeg_drives(kitti_train_drives())
            if stage == "teacher" and KITTI["train"]["teacher"]["hints"]:
                files["hints"] = [f"results/kitti/depth_hints/{d}" for d in kitti_train_drives()]
        else:  # endo: every sequence (sfm_data and frames in the same order)
            files["sfm_data"] = expand("results/endo/{seq}/sfm_data.npz", seq=endo_sequences())
            files["frames"] = expand("results/endo/{seq}/frames", seq=endo_sequences())
        if stage in PREVIOUS_STAGE:
            files["previous"] = f"results/{wildcards.branch}/train/{PREVIOUS_STAGE[stage]}/model.pt"
        return files

    return inputs


def train_params(stage):
    """Params of a training stage: preset, stage section (with the preset's overrides of this
    stage's keys) and shared settings."""

    def params(wildcards):
        train = train_section(wildcards.branch)
        full = train_preset(wildcards.branch)
        # only this stage's length and lr_step, so that changing another stage's does not
        # re-run this one (params are rerun triggers)
        preset = {k: ({stage: v.get(stage, 0)} if k in ("length", "lr_step") else v)
                  for k, v in full.items() if k != "overrides"}
        section = {**train[stage], **(full.get("overrides") or {}).get(stage, {})}
        return {"preset": preset, "section": section, "common": train["common"]}

    return params


def train_paths(wildcards):
    """Branch-specific data locations a training stage reads (params, not inputs)."""
    if wildcards.branch == "kitti":
        return {"raw_root": kitti_root(), "image_root": kitti_image_root(), "image_ext": kitti_image_ext()}
    return {}


def kitti_eval_stages():
    """Rows of results/kitti_eval.csv: the training stages, the constant-depth baseline and,
    if configured, external disparities."""
    stages = TRAIN_STAGES + ["constant"]
    if KITTI["evaluate"]["external_disparities"]:
        stages.append("external")
    return stages


def kitti_eval_disparities(wildcards):
    """Disparities evaluate_depth scores: a stage's predictions, nothing for the constant
    baseline, the configured file for external ones."""
    if wildcards.stage == "constant":
        return []
    if wildcards.stage == "external":
        return [KITTI["evaluate"]["external_disparities"]]
    return [f"results/kitti/pred/{wildcards.stage}/{KITTI['evaluate']['split']}_disps.npy"]
