# Endoscopy branch, evaluation (docs/endoscopy.md): predicted depth -> point clouds -> similarity
# registration to the CT surface -> results/endo_eval.csv. Library: workflow_scripts/endo/
# {predict,pointcloud,register,evaluate}.py.


rule predict_endo_depth:
    """Depth of every registered view of a sequence by a trained stage.

    Output results/endo/pred/<stage>/<seq>/depth.npz (np.load, no pickle), the interface of
    the point-cloud export, the CT registration and results/endo_eval.csv (the "constant"
    baseline stage writes the same file):
      depth          (N, H, W) float32, camera z in the SfM world units of the sequence (the
                     units of cam_from_world in sfm_data.npz: the global_scale normalisation
                     undone), 0 outside the mask. The network's depth is rescaled per frame
                     to the frame's SfM sparse depths (the reference's depth-scaling layer),
                     so back-projected with K and cam_from_world the per-frame clouds fuse.
      frame_indexes  (N,) int64, the frame numbers (results/endo/<seq>/frames/<index:08d>.jpg),
                     = sfm_data view_indexes (registered views, ascending).
      K              (3, 3) float64, intrinsics of the network image (sfm_data K; H x W =
                     sfm_data input_size: the frame resized by 1/downsampling and cropped).
      mask           (H, W) uint8, 1 = valid (field of view: sfm_data mask > 0.9 * 255).
      cam_from_world (N, 4, 4) float64, the frames' SfM poses (world -> camera, SfM units).
      frame_scales   (N,) float64, depth = frame_scale x the network's raw depth.
      global_scale   () float64, sfm_data's; units () str "sfm"; stage, sequence () str.
    """
    input:
        model="results/endo/train/{stage}/model.pt",
        sfm_data="results/endo/{seq}/sfm_data.npz",
        frames=endo_frames_input,
    output:
        "results/endo/pred/{stage,teacher|student|finetune}/{seq}/depth.npz",
    log:
        "logs/predict_endo_depth/{stage}_{seq}.log",
    benchmark:
        "benchmarks/predict_endo_depth/{stage}_{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    # endoscopy.evaluate.threads (1: a one-thread job starts as soon as a core is free)
    threads: ENDO["evaluate"]["threads"]
    resources:
        gpu=1,
    params:
        threads=ENDO["evaluate"]["threads"],
    script:
        "../workflow_scripts/predict_endo_depth.py"


rule predict_endo_constant:
    """The constant-depth baseline (median SfM sparse depth per frame) in the prediction
    format of the trained stages."""
    input:
        sfm_data="results/endo/{seq}/sfm_data.npz",
    output:
        "results/endo/pred/constant/{seq}/depth.npz",
    log:
        "logs/predict_endo_constant/{seq}.log",
    benchmark:
        "benchmarks/predict_endo_constant/{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    script:
        "../workflow_scripts/predict_endo_constant.py"


rule export_point_clouds:
    """Per-frame PLYs (camera frame) and the fused cloud (SfM world frame and units)."""
    input:
        depth="results/endo/pred/{stage}/{seq}/depth.npz",
        sfm_data="results/endo/{seq}/sfm_data.npz",
        frames=endo_frames_input,
    output:
        fused="results/endo/pointclouds/{stage}/{seq}/fused.ply",
        frames=directory("results/endo/pointclouds/{stage}/{seq}/frames"),
        summary="results/endo/pointclouds/{stage}/{seq}/summary.json",
    log:
        "logs/export_point_clouds/{stage}/{seq}.log",
    benchmark:
        "benchmarks/export_point_clouds/{stage}/{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    params:
        options=ENDO["point_clouds"],
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
    log:
        "logs/register_ct/{stage}/{seq}.log",
    benchmark:
        "benchmarks/register_ct/{stage}/{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: ENDO["register"]["threads"]
    resources:
        mem_mb=lambda wc, input, attempt: register_resources(wc, input, attempt)["mem_mb"],
        runtime=lambda wc, input, attempt: register_resources(wc, input, attempt)["runtime"],
    params:
        ct=endo_ct_surface,
        truth=register_ct_truth,
        options=ENDO["register"],
        seed=config["seed"],
    script:
        "../workflow_scripts/register_ct.py"


rule evaluate_endo_depth:
    """A stage's depth against the SfM sparse points (abs_rel, delta < 1.25, median scaling)."""
    input:
        depth="results/endo/pred/{stage}/{seq}/depth.npz",
        sfm_data="results/endo/{seq}/sfm_data.npz",
    output:
        "results/endo/eval/{stage}/{seq}.json",
    log:
        "logs/evaluate_endo_depth/{stage}/{seq}.log",
    conda:
        "../envs/depth-workflow.yaml"
    script:
        "../workflow_scripts/evaluate_endo_depth.py"


rule endo_eval_table:
    """results/endo_eval.csv: one row per stage x sequence."""
    input:
        clouds=expand("results/endo/pointclouds/{key}/summary.json", key=endo_eval_keys()),
        registrations=expand("results/endo/registration/{key}.json", key=endo_eval_keys(registered=True)),
        depths=expand("results/endo/eval/{key}.json", key=endo_eval_keys()),
    output:
        report(
            "results/endo_eval.csv",
            caption="report/endo_eval.rst",
            category="Evaluation",
            labels={"table": "endo_eval", "content": "CSV download"},
        ),
    log:
        "logs/endo_eval_table/endo_eval_table.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        rows=endo_eval_rows(),
    script:
        "../workflow_scripts/endo_eval_table.py"


rule predict_endo_video:
    """Depth of a new video (endoscopy.predict.videos) by a trained stage, without SfM: per-frame
    depth (.npz, 16-bit .png), a colour-mapped depth.mp4, masked per-frame clouds (.ply) and
    summary.json (units, the model's training sequences); workflow_scripts/endo/new_video.py."""
    input:
        unpack(predict_endo_video_input),
    output:
        dir=directory("results/endo/new/{video}"),
    log:
        "logs/predict_endo_video/{video}.log",
    benchmark:
        "benchmarks/predict_endo_video/{video}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: ENDO["evaluate"]["threads"]
    resources:
        gpu=1,
    params:
        source=lambda wildcards: endo_new_video_params(wildcards)["source"],
        camera=lambda wildcards: endo_new_video_params(wildcards)["camera"],
        stride=ENDO["predict"]["stride"],
        max_frames=ENDO["predict"]["max_frames"],
        scale=ENDO["predict"]["scale"] or None,
        fps=ENDO["predict"]["fps"],
        frames=ENDO["frames"],
        sfm_data=ENDO["sfm_data"],
    script:
        "../workflow_scripts/predict_endo_video.py"
