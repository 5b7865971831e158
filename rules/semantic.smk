# SGDepth in the driving branch (docs/driving.md): the unmasked controls of the masked stages,
# the test frames' labels, segmentation predictions and results/kitti_seg_eval.csv.
# Library: workflow_scripts/kitti/semantic_eval.py, models/training/semantic.py.


rule train_unmasked:
    """A masked stage's control (teacher or fine-tune): the same stage, steps, seed and data,
    without masking."""
    input:
        unpack(unmasked_train_inputs),
    output:
        model="results/{branch}/train/{stage}_unmasked/model.pt",
        history="results/{branch}/train/{stage}_unmasked/history.csv",
    log:
        "logs/train_unmasked/{branch}_{stage}.log",
    benchmark:
        "benchmarks/train_unmasked/{branch}_{stage}.tsv"
    wildcard_constraints:
        branch="kitti",
        stage="teacher|finetune",
    conda:
        "../envs/depth-workflow.yaml"
    threads: train_cores
    resources:
        gpu=train_gpus,
        cpus_per_task=train_cpus,
        nodes=train_slurm_nodes,
        tasks=train_slurm_tasks,
        tasks_per_gpu=train_tasks_per_gpu,
        mpi=train_mpi,
        gres=train_gres,
        mem_mb=train_mem_mb,
        runtime=unmasked_train_runtime,
    params:
        train=unmasked_train_params,
        paths=train_paths,
        seed=TRAIN_SEED,
    script:
        "../workflow_scripts/train_unmasked.py"


rule export_test_labels:
    """The test frames' semantic labels (trainIds), for abs_rel_movable and the mIoU table."""
    input:
        kitti_raw_data,
        split="results/kitti/splits/{split}/test_files.txt",
    output:
        f"results/kitti/gt/{{split,{KITTI_SPLIT_WILDCARD}}}_labels.npz",
    log:
        "logs/export_test_labels/{split}.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        labels=kitti_test_labels_root(),
    script:
        "../workflow_scripts/export_test_labels.py"


rule predict_segmentation:
    """Class ids of the test frames by a stage with a segmentation head: (N, h, w) uint8 .npy."""
    input:
        kitti_raw_data,
        model="results/kitti/train/{stage}/model.pt",
        split="results/kitti/splits/{split}/test_files.txt",
    output:
        f"results/kitti/pred/{{stage,{KITTI_MODEL_STAGE_WILDCARD}}}/{{split,{KITTI_SPLIT_WILDCARD}}}_seg.npy",
    log:
        "logs/predict_segmentation/{stage}_{split}.log",
    conda:
        "../envs/depth-workflow.yaml"
    threads: KITTI["evaluate"]["threads"]
    resources:
        gpu=1,
    params:
        image_root=kitti_image_root,
        raw_root=kitti_root,
        image_ext=kitti_image_ext,
        threads=KITTI["evaluate"]["threads"],
    script:
        "../workflow_scripts/predict_segmentation.py"


rule kitti_seg_eval_table:
    """results/kitti_seg_eval.csv: mIoU, pixel accuracy and per-class IoU per stage with a
    segmentation head, and the majority-class baseline."""
    input:
        labels=f"results/kitti/gt/{KITTI_EVAL_SPLIT}_labels.npz",
        preds=expand(
            "results/kitti/pred/{stage}/{split}_seg.npy",
            stage=kitti_seg_stages(),
            split=KITTI_EVAL_SPLIT,
        ),
    output:
        report(
            "results/kitti_seg_eval.csv",
            caption="report/kitti_seg_eval.rst",
            category="Evaluation",
            labels={"table": "kitti_seg_eval", "content": "CSV download"},
        ),
    log:
        "logs/kitti_seg_eval_table/kitti_seg_eval_table.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        stages=kitti_seg_stages(),
    script:
        "../workflow_scripts/kitti_seg_eval_table.py"


rule plot_kitti_masking:
    """Test frames with moving cars: input, segmentation, depth of the masked stage and of its
    control."""
    input:
        kitti_raw_data,
        unpack(kitti_masking_figure_inputs),
        images=kitti_jpeg_drives(kitti_test_drives()),
        split=f"results/kitti/splits/{KITTI_EVAL_SPLIT}/test_files.txt",
        labels=f"results/kitti/gt/{KITTI_EVAL_SPLIT}_labels.npz",
    output:
        report(
            "results/kitti/report/masking.png",
            category="Driving (KITTI)",
            subcategory="Depth",
            labels={"figure": "semantic masking"},
        ),
    log:
        "logs/plot_kitti_masking/plot_kitti_masking.log",
    priority: -1
    conda:
        "../envs/depth-workflow.yaml"
    params:
        image_root=kitti_image_root,
        image_ext=kitti_image_ext,
        frames=REPORT["frames"],
        stage=kitti_masked_stage(),
    script:
        "../workflow_scripts/plot_kitti_masking.py"
