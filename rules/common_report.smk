# Helpers of the report rules (rules/report.smk): which figures the configured data lead to,
# and the input functions of the endoscopy figures. Figures are built by `all` (seconds each);
# `snakemake --report report.html` then collects them with the evaluation tables.
REPORT = config["report"]

# Bars of the evaluation tables (plot_kitti_eval / plot_endo_eval): x axis, bar colours
# (None = one bar per x) and the metrics ("numeric" = every numeric column but x and group).
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
        "metrics": ["residual_mean_mm", "residual_median_mm", "residual_rms_mm", "residual_p95_mm",
                    "abs_rel", "delta1"],
        "title": "Endoscopy branch: residuals to the CT per stage (results/endo_eval.csv)",
    },
}


def endo_report_parts():
    """Endoscopy parts of the report, keyed on the config (never on files that exist):
    none without report.endoscopy; else 'sfm' (run_sfm / prepare_sfm_data, always there),
    'training' and 'depth' (the endoscopy training stages), and 'registration' (residual histograms, cloud on the CT,
    results/endo_eval.csv) when results/endo_eval.csv is a target (demo, or real data with a
    CT surface). The DAG then requires
    their inputs."""
    if not REPORT["endoscopy"]:
        return set()
    parts = {"sfm", "training", "depth"}
    if "results/endo_eval.csv" in final_targets():
        parts.add("registration")
    return parts


def report_targets():
    """Every figure (and table) of the report for the configured data."""
    targets = expand("results/kitti/report/depth/{stage}.png", stage=TRAIN_STAGES)
    targets += ["results/kitti/report/training_curves.png", "results/kitti/report/eval_metrics.png"]
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
        targets += expand("results/endo/report/registration/{seq}_residuals.png", seq=seqs)
        targets += expand(
            "results/endo/report/registration/{stage}/{seq}_on_ct.png", stage=endo_eval_stages(), seq=seqs
        )
        targets.append("results/endo/report/eval_metrics.png")
    return targets


def report_histories(wildcards):
    """history.csv of every training stage of a branch (plot_training_curves)."""
    return expand("results/{branch}/train/{stage}/history.csv", branch=wildcards.branch, stage=TRAIN_STAGES)


def sfm_summary_inputs(wildcards):
    """sfm_data of a sequence and, when the model came from run_sfm, its folder (summary.json)."""
    files = {
        "npz": f"results/endo/{wildcards.seq}/sfm_data.npz",
        "info": f"results/endo/{wildcards.seq}/sfm_data.json",
    }
    if ENDO_FORMAT != "liu":
        files["sfm"] = f"results/endo/{wildcards.seq}/sfm"
    return files


def registration_view_inputs(wildcards):
    """Registered cloud, its residuals and the CT surface; on the demo the CT is inside the
    folder that make_demo_endoscopy writes, so that folder is the input."""
    base = f"results/endo/registration/{wildcards.stage}/{wildcards.seq}"
    files = {"cloud": f"{base}.ply", "residuals": f"{base}_residuals.npy"}
    if USE_DEMO_ENDO and not config["endoscopy"]["ct_surface"]:
        files["ct_data"] = endo_root()  # the demo folder (a directory output) holds the CT
    else:
        files["ct_file"] = endo_ct_surface()
    return files


def registration_residuals(wildcards):
    """Residuals of every stage's registration of a sequence (plot_registration_residuals)."""
    return expand(
        "results/endo/registration/{stage}/{seq}_residuals.npy", stage=endo_eval_stages(), seq=wildcards.seq
    )
