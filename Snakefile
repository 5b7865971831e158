# The self-supervised depth workflow: includes and target rules only.
# Logic lives in workflow_scripts/ (non-torch) and models/ (torch); see README.md and docs/.


# The user's config beside this Snakefile, also when run with --directory elsewhere. Defaults of
# every key: docs/configuration.md; the demo's settings: config/demo.yaml (rules/common.smk).
configfile: os.path.join(workflow.basedir, "config.yaml")


# Front page of `snakemake --report report.html`; figures come from rules/report.smk.
report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/common_train.smk"
include: "rules/common_endo.smk"
include: "rules/common_semantic.smk"
include: "rules/common_resources.smk"
include: "rules/common_pose.smk"
include: "rules/common_kitti_predict.smk"
include: "rules/demo.smk"
include: "rules/kitti_prep.smk"
include: "rules/endo_prep.smk"
include: "rules/train.smk"
include: "rules/kitti_eval.smk"
include: "rules/kitti_predict.smk"
include: "rules/kitti_pose.smk"
include: "rules/semantic.smk"
include: "rules/endo_eval.smk"
include: "rules/report.smk"


# Everything the configured data lead to (on the demo the demo datasets, results/kitti_eval.csv
# and results/endo_eval.csv) and the report's figures.
rule all:
    default_target: True
    input:
        final_targets(),
        report_targets(),
