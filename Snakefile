# The self-supervised depth workflow: includes and target rules only.
# Logic lives in workflow_scripts/ (non-torch) and models/ (torch); see README.md.

# The default (demo) config beside this Snakefile, also when run with --directory elsewhere.
configfile: os.path.join(workflow.basedir, "config.yaml")


# Front page of `snakemake --report report.html`; figures come from rules/report.smk.
report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/common_endo.smk"
include: "rules/demo.smk"
include: "rules/kitti.smk"
include: "rules/endoscopy.smk"
include: "rules/common_train.smk"
include: "rules/train.smk"
include: "rules/endo_predict.smk"
include: "rules/evaluate.smk"
include: "rules/endo_eval.smk"
include: "rules/common_report.smk"
include: "rules/report.smk"


rule all:
    """Everything the configured data lead to (on the demo: the demo datasets and, as the
    branches are completed, results/kitti_eval.csv and results/endo_eval.csv), and the
    report's figures."""
    input:
        final_targets(),
        report_targets(),
    default_target: True
