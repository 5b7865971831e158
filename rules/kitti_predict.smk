# Depth for your own images or videos with a trained driving stage (kitti.predict.inputs) and, on the
# demo, the held-out test drive as a video to run it on. Library: workflow_scripts/kitti/infer.py.
# Input and parameter functions: rules/common_kitti_predict.smk. Docs: docs/beyond_eigen.md.


rule kitti_demo_video:
    """The demo's held-out test drive (demo.kitti.test_drives) as a video: its left images at
    KITTI's 10 Hz, mp4v; config/demo.yaml lists it in kitti.predict.inputs."""
    input:
        kitti_raw_data,
    output:
        "results/kitti/demo_video/{drive}.mp4",
    log:
        "logs/kitti_demo_video/{drive}.log",
    benchmark:
        "benchmarks/kitti_demo_video/{drive}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    params:
        images=kitti_demo_video_images,
        fps=10.0,
    script:
        "../workflow_scripts/kitti_demo_video.py"


rule predict_images:
    """Depth of a video or image folder (kitti.predict.inputs) by a trained stage: per-frame depth
    (.npy float32, 16-bit .png = depth x 256), colour-mapped PNGs and depth.mp4, disps.npy (monodepth2's
    --ext_disp_to_eval format) and summary.json (metres or relative); workflow_scripts/kitti/infer.py."""
    input:
        unpack(predict_images_input),
    output:
        dir=directory("results/kitti/predict/{stage,teacher|student|finetune}/{name}"),
    log:
        "logs/predict_images/{stage}/{name}.log",
    benchmark:
        "benchmarks/predict_images/{stage}/{name}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    # kitti.evaluate.threads (1: a one-thread job starts as soon as a core is free)
    threads: KITTI["evaluate"]["threads"]
    resources:
        gpu=1,
    params:
        source=lambda wildcards: KITTI_PREDICT_INPUTS[wildcards.name],
        predict=KITTI["predict"],
        # a student's scale is its teacher's (its model.pt does not record it)
        teacher_stereo=KITTI["train"]["teacher"]["stereo"],
    script:
        "../workflow_scripts/predict_images.py"
