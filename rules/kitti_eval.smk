# Prediction and evaluation of the driving branch (Eigen protocol) -> results/kitti_eval.csv.
# Library: workflow_scripts/kitti/predict.py, workflow_scripts/kitti/evaluate.py.


rule predict_depth:
    """Disparities of a test split in monodepth2's layout: (N, H, W) float32 .npy."""
    input:
        kitti_raw_data,
        model="results/kitti/train/{stage}/model.pt",
        split="results/kitti/splits/{split}/test_files.txt",
    output:
        f"results/kitti/pred/{{stage,{KITTI_MODEL_STAGE_WILDCARD}}}/{{split,{KITTI_SPLIT_WILDCARD}}}_disps.npy",
    log:
        "logs/predict_depth/{stage}_{split}.log",
    benchmark:
        "benchmarks/predict_depth/{stage}_{split}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    # kitti.evaluate.threads (1: a one-thread job starts as soon as a core is free)
    threads: KITTI["evaluate"]["threads"]
    resources:
        gpu=1,
    params:
        image_root=kitti_image_root,
        raw_root=kitti_root,
        image_ext=kitti_image_ext,
        post_process=KITTI["evaluate"]["post_process"],
        threads=KITTI["evaluate"]["threads"],
    script:
        "../workflow_scripts/predict_depth.py"


rule evaluate_depth:
    """Eigen metrics of one stage's (or the constant baseline's) disparities, per scaling."""
    input:
        unpack(kitti_eval_labels),
        gt=f"results/kitti/gt/{KITTI_EVAL_SPLIT}.npz",
        disps=kitti_eval_disparities,
    output:
        "results/kitti/eval/{stage}.csv",
    log:
        "logs/evaluate_depth/{stage}.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        evaluate=KITTI["evaluate"],
        stereo_baseline=KITTI["train"]["common"]["stereo_baseline"],
    script:
        "../workflow_scripts/evaluate_depth.py"


rule kitti_eval_table:
    """results/kitti_eval.csv: one row per stage x scaling."""
    input:
        expand("results/kitti/eval/{stage}.csv", stage=kitti_eval_stages()),
    output:
        report(
            "results/kitti_eval.csv",
            caption="report/kitti_eval.rst",
            category="Evaluation",
            labels={"table": "kitti_eval", "content": "CSV download"},
        ),
    log:
        "logs/kitti_eval_table/kitti_eval_table.log",
    conda:
        "../envs/depth-workflow.yaml"
    script:
        "../workflow_scripts/join_tables.py"
