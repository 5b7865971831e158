# Figures of the Snakemake report (`snakemake --report report.html`): matplotlib PNGs made by
# rules, flagged with report() and captioned by rules/report/*.rst; library code in
# workflow_scripts/report/. Figures are built by `all` (seconds each) and have priority -1:
# when a figure and a step towards an evaluation table are both ready, the table goes first.


# Bars of the evaluation tables (plot_kitti_eval / plot_endo_eval): x axis, bar colours
# (None = one bar per x), the metrics ("numeric" = every numeric column but x and group) and a
# boolean column that hatches its rows' bars.
EVAL_PLOTS = {
    "kitti": {
        "x": "stage",
        "group": "scaling",
        "metrics": ["abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"],
        "title": "Driving branch: Eigen metrics per stage (results/kitti_eval.csv)",
    },
    "endo": {
        "x": "stage",
        "group": "sequence",
        # not "numeric": register_seconds and the truth_* checks are not metrics
        "metrics": [
            "residual_mean_mm",
            "residual_median_mm",
            "residual_rms_mm",
            "residual_p95_mm",
            "runner_up_ratio",
            "abs_rel",
            "delta1",
        ],
        # an ambiguous registration's bars (on the demo also one wrong by the truth) are hatched in
        # the registration's panels (docs/registration.md)
        "flag": "ambiguous",
        "flag_metrics": [
            "residual_mean_mm",
            "residual_median_mm",
            "residual_rms_mm",
            "residual_p95_mm",
            "runner_up_ratio",
        ],
        "title": "Endoscopy branch: residuals to the CT per stage (results/endo_eval.csv)",
    },
}

# Evaluation tables shown as HTML in the report (eval_table_html): the branch whose report
# folder holds the page, its title, the column within whose values the best stage is bold, and
# columns left out of the page (they stay in the CSV).
EVAL_TABLES = {
    "kitti_eval": {
        "branch": "kitti",
        "title": "Driving branch: depth on the test split (Eigen metrics)",
        "group": "scaling",
        "drop": ["source"],  # the prediction's path: the stage names it
    },
    "endo_eval": {
        "branch": "endo",
        "title": "Endoscopy branch: registration to the CT and depth against the SfM points",
        "group": "sequence",
    },
    "kitti_seg_eval": {
        "branch": "kitti",
        "title": "Driving branch: semantic segmentation of the test frames",
        "group": None,
    },
    "kitti_pose_eval": {
        "branch": "kitti",
        "title": "Driving branch: pose on the odometry sequences (ATE, RE)",
        "group": "sequence",
    },
}


rule plot_kitti_depth:
    """Test frames: input, LiDAR ground truth, every stage's depth as the evaluation scales it
    (one colour scale in metres) and the last trained stage's abs_rel error map."""
    input:
        unpack(kitti_report_disparities),
        kitti_raw_data,
        images=kitti_jpeg_drives(kitti_test_drives()),
        gt=f"results/kitti/gt/{KITTI_EVAL_SPLIT}.npz",
        split=f"results/kitti/splits/{KITTI_EVAL_SPLIT}/test_files.txt",
    output:
        report(
            "results/kitti/report/depth_frames.png",
            caption="report/kitti_depth.rst",
            category="Driving (KITTI)",
            subcategory="Depth",
            labels={"figure": "depth per stage"},
        ),
    log:
        "logs/plot_kitti_depth/plot_kitti_depth.log",
    benchmark:
        "benchmarks/plot_kitti_depth/plot_kitti_depth.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        stages=list(kitti_report_disparities()),
        evaluate=KITTI["evaluate"],
        stereo_baseline=KITTI["train"]["common"]["stereo_baseline"],
        image_root=kitti_image_root,
        image_ext=kitti_image_ext,
        frames=REPORT["frames"],
    script:
        "../workflow_scripts/plot_kitti_depth.py"


rule plot_kitti_per_frame:
    """Per-frame abs_rel (median scaling) of every row of results/kitti_eval.csv: box plots and a CSV."""
    input:
        unpack(kitti_report_disparities),
        gt=f"results/kitti/gt/{KITTI_EVAL_SPLIT}.npz",
        split=f"results/kitti/splits/{KITTI_EVAL_SPLIT}/test_files.txt",
    output:
        png=report(
            "results/kitti/report/per_frame_abs_rel.png",
            caption="report/kitti_per_frame.rst",
            category="Driving (KITTI)",
            subcategory="Depth",
            labels={"figure": "abs_rel per frame"},
        ),
        csv="results/kitti/report/per_frame_abs_rel.csv",
    log:
        "logs/plot_kitti_per_frame/plot_kitti_per_frame.log",
    benchmark:
        "benchmarks/plot_kitti_per_frame/plot_kitti_per_frame.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        stages=kitti_eval_stages(),
        evaluate=KITTI["evaluate"],
        stereo_baseline=KITTI["train"]["common"]["stereo_baseline"],
    script:
        "../workflow_scripts/plot_kitti_per_frame.py"


rule plot_training_curves:
    """Loss curves of a branch's training stages (teacher, student, fine-tune)."""
    input:
        report_histories,
    output:
        report(
            "results/{branch}/report/training_curves.png",
            caption="report/training_curves.rst",
            category="Training",
            labels={"branch": "{branch}"},
        ),
    log:
        "logs/plot_training_curves/{branch}.log",
    benchmark:
        "benchmarks/plot_training_curves/{branch}.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        stages=TRAIN_STAGES,
        smooth=REPORT["curves_smooth"],
    script:
        "../workflow_scripts/plot_training_curves.py"


rule plot_kitti_eval:
    """Bar charts of results/kitti_eval.csv (the table itself is flagged by kitti_eval_table)."""
    input:
        "results/kitti_eval.csv",
    output:
        report(
            "results/kitti/report/eval_metrics.png",
            caption="report/eval_metrics.rst",
            category="Evaluation",
            labels={"table": "kitti_eval", "content": "bar charts"},
        ),
    log:
        "logs/plot_kitti_eval/plot_kitti_eval.log",
    benchmark:
        "benchmarks/plot_kitti_eval/plot_kitti_eval.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        plot=EVAL_PLOTS["kitti"],
    script:
        "../workflow_scripts/plot_eval_metrics.py"


rule plot_sfm_summary:
    """Trajectory, sparse points and sparse supervision of one endoscopy sequence."""
    input:
        unpack(sfm_summary_inputs),
    output:
        png=report(
            "results/endo/report/sfm/{seq}.png",
            caption="report/sfm_summary.rst",
            category="Endoscopy",
            subcategory="SfM",
            labels={"sequence": "{seq}"},
        ),
        row="results/endo/report/sfm/{seq}.json",
    log:
        "logs/plot_sfm_summary/{seq}.log",
    benchmark:
        "benchmarks/plot_sfm_summary/{seq}.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        seed=config["seed"],
    script:
        "../workflow_scripts/plot_sfm_summary.py"


rule sfm_summary_table:
    """The sequences' SfM counts as one table."""
    input:
        expand("results/endo/report/sfm/{seq}.json", seq=endo_sequences()),
    output:
        report(
            "results/endo/report/sfm_summary.csv",
            caption="report/sfm_summary_table.rst",
            category="Endoscopy",
            subcategory="SfM",
            labels={"sequence": "all (table)"},
        ),
    log:
        "logs/sfm_summary_table/sfm_summary_table.log",
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    script:
        "../workflow_scripts/join_tables.py"


rule plot_endo_depth:
    """A stage's depth maps of one sequence, colour-mapped, next to the network's frames."""
    input:
        depth="results/endo/pred/{stage}/{seq}/depth.npz",
        frames=endo_frames_input,
        sfm_data="results/endo/{seq}/sfm_data.npz",
    output:
        report(
            "results/endo/report/depth/{stage,teacher|student|finetune}/{seq}.png",
            caption="report/endo_depth.rst",
            category="Endoscopy",
            subcategory="Depth",
            labels={"stage": "{stage}", "sequence": "{seq}"},
        ),
    log:
        "logs/plot_endo_depth/{stage}_{seq}.log",
    benchmark:
        "benchmarks/plot_endo_depth/{stage}_{seq}.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        frames=REPORT["frames"],
        unit="SfM units",
    script:
        "../workflow_scripts/plot_endo_depth.py"


rule plot_registration_residuals:
    """Histograms of one sequence's residual distances to the CT, one curve per stage."""
    input:
        unpack(registration_residuals),
    output:
        report(
            "results/endo/report/registration/{seq}_residuals.png",
            caption="report/registration_residuals.rst",
            category="Endoscopy",
            subcategory="Registration to CT",
            labels={"sequence": "{seq}", "stage": "all", "content": "residual histogram"},
        ),
    log:
        "logs/plot_registration_residuals/{seq}.log",
    benchmark:
        "benchmarks/plot_registration_residuals/{seq}.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        stages=endo_eval_stages(),
        bins=REPORT["residual_bins"],
    script:
        "../workflow_scripts/plot_registration_residuals.py"


rule plot_registration_view:
    """A stage's registered cloud of one sequence on the CT surface (orthographic views)."""
    input:
        unpack(registration_view_inputs),
    output:
        report(
            "results/endo/report/registration/{stage,teacher|student|finetune|constant}/{seq}_on_ct.png",
            caption="report/registration_view.rst",
            category="Endoscopy",
            subcategory="Registration to CT",
            labels={"sequence": "{seq}", "stage": "{stage}", "content": "cloud on CT"},
        ),
    log:
        "logs/plot_registration_view/{stage}_{seq}.log",
    benchmark:
        "benchmarks/plot_registration_view/{stage}_{seq}.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        ct=endo_ct_surface,
        seed=config["seed"],
        residual_max_mm=REPORT["residual_max_mm"],
    script:
        "../workflow_scripts/plot_registration_view.py"


rule plot_endo_eval:
    """Bar charts of results/endo_eval.csv; also puts that table into the report."""
    input:
        report(
            "results/endo_eval.csv",
            caption="report/endo_eval.rst",
            category="Evaluation",
            labels={"table": "endo_eval", "content": "CSV download"},
        ),
    output:
        report(
            "results/endo/report/eval_metrics.png",
            caption="report/eval_metrics.rst",
            category="Evaluation",
            labels={"table": "endo_eval", "content": "bar charts"},
        ),
    log:
        "logs/plot_endo_eval/plot_endo_eval.log",
    benchmark:
        "benchmarks/plot_endo_eval/plot_endo_eval.tsv"
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        plot=EVAL_PLOTS["endo"],
    script:
        "../workflow_scripts/plot_eval_metrics.py"


rule eval_table_html:
    """An evaluation table as an HTML page, shown inline by the report (a CSV is a download)."""
    input:
        "results/{table}.csv",
    output:
        report(
            "results/{branch,kitti|endo}/report/{table,kitti_eval|endo_eval|kitti_seg_eval|kitti_pose_eval}.html",
            caption="report/eval_table.rst",
            category="Evaluation",
            labels={"table": "{table}", "content": "table"},
        ),
    log:
        "logs/eval_table_html/{branch}_{table}.log",
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        table=lambda wildcards: EVAL_TABLES[wildcards.table],
    script:
        "../workflow_scripts/eval_table_html.py"


rule report_figures:
    """Every figure of the report for the configured data (also built by `all`)."""
    input:
        report_targets(),
