# Endoscopy branch, evaluation: predicted depth -> point clouds -> similarity registration to
# the CT surface -> results/endo_eval.csv. Helpers in rules/common_endo.smk, library code in
# workflow_scripts/endo/{pointcloud,register,evaluate}.py.


rule predict_endo_constant:
    """The constant-depth baseline (median SfM sparse depth per frame) in the prediction
    format of the trained stages."""
    input:
        sfm_data="results/endo/{seq}/sfm_data.npz",
    output:
        "results/endo/pred/constant/{seq}/depth.npz",
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/predict_endo_constant/{seq}.log",
    benchmark:
        "benchmarks/predict_endo_constant/{seq}.tsv"
    script:
        "../workflow_scripts/predict_endo_constant.py"


rule export_point_clouds:
    """Per-frame PLYs (camera frame) and the fused cloud (SfM world frame and units)."""
    input:
        depth="results/endo/pred/{stage}/{seq}/depth.npz",
        sfm_data="results/endo/{seq}/sfm_data.npz",
        frames="results/endo/{seq}/frames",
    output:
        fused="results/endo/pointclouds/{stage}/{seq}/fused.ply",
        frames=directory("results/endo/pointclouds/{stage}/{seq}/frames"),
        summary="results/endo/pointclouds/{stage}/{seq}/summary.json",
    params:
        options=config["endoscopy"]["point_clouds"],
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/export_point_clouds/{stage}/{seq}.log",
    benchmark:
        "benchmarks/export_point_clouds/{stage}/{seq}.tsv"
    script:
        "../workflow_scripts/export_point_clouds.py"


rule register_ct:
    """7-DoF similarity registration of the fused cloud to the CT surface; residuals in mm."""
    input:
        unpack(register_ct_input),
    output:
        json="results/endo/registration/{stage}/{seq}.json",
        ply="results/endo/registration/{stage}/{seq}.ply",
        residuals="results/endo/registration/{stage}/{seq}_residuals.npy",
    params:
        ct=endo_ct_surface(),
        truth=register_ct_truth,
        options=config["endoscopy"]["register"],
        seed=config["seed"],
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/register_ct/{stage}/{seq}.log",
    benchmark:
        "benchmarks/register_ct/{stage}/{seq}.tsv"
    script:
        "../workflow_scripts/register_ct.py"


rule evaluate_endo_depth:
    """A stage's depth against the SfM sparse points (abs_rel, delta < 1.25, median scaling)."""
    input:
        depth="results/endo/pred/{stage}/{seq}/depth.npz",
        sfm_data="results/endo/{seq}/sfm_data.npz",
    output:
        "results/endo/eval/{stage}/{seq}.json",
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/evaluate_endo_depth/{stage}/{seq}.log",
    script:
        "../workflow_scripts/evaluate_endo_depth.py"


rule endo_eval_table:
    """results/endo_eval.csv: one row per stage x sequence."""
    input:
        clouds=expand("results/endo/pointclouds/{key}/summary.json", key=endo_eval_keys()),
        registrations=expand("results/endo/registration/{key}.json", key=endo_eval_keys()),
        depths=expand("results/endo/eval/{key}.json", key=endo_eval_keys()),
    output:
        report("results/endo_eval.csv", caption="report/endo_eval.rst", category="Evaluation"),
    params:
        rows=endo_eval_keys(),
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/endo_eval_table/endo_eval_table.log",
    script:
        "../workflow_scripts/endo_eval_table.py"
