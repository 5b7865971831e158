# Endoscopy branch: depth of every registered frame by a trained stage, the input of the
# point clouds and the CT registration (rules/endo_eval.smk).


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
        frames="results/endo/{seq}/frames",
    output:
        "results/endo/pred/{stage,teacher|student|finetune}/{seq}/depth.npz",
    # One thread: inference takes seconds on the demo, and a one-thread job starts as soon as
    # a core is free (a two-thread job waits for both while one-thread jobs keep starting).
    # More for large CPU runs: --set-threads predict_endo_depth=8.
    threads: 1
    resources:
        gpu=1,
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/predict_endo_depth/{stage}_{seq}.log",
    benchmark:
        "benchmarks/predict_endo_depth/{stage}_{seq}.tsv"
    script:
        "../workflow_scripts/predict_endo_depth.py"
