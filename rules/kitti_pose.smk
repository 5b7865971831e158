# Pose evaluation of the driving branch (monodepth2's evaluate_pose.py protocol, SC-Depth's RE)
# -> results/kitti_pose_eval.csv. Library: workflow_scripts/kitti/pose_eval.py (files, metrics),
# workflow_scripts/kitti/pose_predict.py (the pose network over a sequence).


rule export_odometry:
    """The demo's held-out test drives in KITTI odometry's layout (sequences 00, 01, ...)."""
    input:
        kitti_raw_data,
    output:
        directory(KITTI_ODOMETRY_DEMO),
    log:
        "logs/export_odometry/export_odometry.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        raw_root=kitti_root,
        drives=kitti_test_drives(),
    script:
        "../workflow_scripts/export_odometry.py"


rule predict_pose:
    """Relative poses next_from_this (N-1, 4, 4) of one sequence by a stage's pose network."""
    input:
        kitti_pose_data,
        model="results/kitti/train/{stage}/model.pt",
    output:
        "results/kitti/pose/{stage,teacher|teacher_unmasked|finetune|finetune_unmasked}/{seq,[A-Za-z0-9_]+}.npz",
    log:
        "logs/predict_pose/{stage}_{seq}.log",
    benchmark:
        "benchmarks/predict_pose/{stage}_{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    # kitti.pose_eval.threads (1: a one-thread job starts as soon as a core is free)
    threads: KITTI_POSE["threads"]
    resources:
        gpu=1,
    params:
        root=kitti_pose_root,
        threads=KITTI_POSE["threads"],
    script:
        "../workflow_scripts/predict_pose.py"


rule evaluate_pose:
    """results/kitti_pose_eval.csv: ATE (m) and RE (rad) per stage x sequence, identity baseline."""
    input:
        unpack(kitti_pose_inputs),
    output:
        report(
            "results/kitti_pose_eval.csv",
            caption="report/kitti_pose_eval.rst",
            category="Evaluation",
            labels={"table": "kitti_pose_eval", "content": "CSV download"},
        ),
    log:
        "logs/evaluate_pose/evaluate_pose.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        root=kitti_pose_root,
        sequences=kitti_pose_sequences(),
        runs=kitti_pose_runs(),
        options=KITTI_POSE,
    script:
        "../workflow_scripts/evaluate_pose.py"
