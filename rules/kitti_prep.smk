# Driving branch, data preparation (docs/driving.md): test splits and their ground truth, frame
# filtering, train/val lists, SGM depth hints, and an optional PNG -> JPEG conversion.
# Library: workflow_scripts/kitti/.


rule convert_to_jpeg:
    """Optional: a drive's PNGs as JPEG (quality 92, 4:2:0), as the references train on."""
    input:
        kitti_raw_data,
    output:
        directory(r"results/kitti/jpeg/{date,\d{4}_\d{2}_\d{2}}/{drive,\d{4}_\d{2}_\d{2}_drive_\d{4}_sync}"),
    log:
        "logs/convert_to_jpeg/{date}/{drive}.log",
    benchmark:
        "benchmarks/convert_to_jpeg/{date}/{drive}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: 4
    params:
        raw_root=kitti_root,
        quality=KITTI["jpeg"]["quality"],
    script:
        "../workflow_scripts/convert_to_jpeg.py"


rule make_test_split:
    """Frames of a test split: a split file, the shipped list (real KITTI) or the demo's held-out
    drives, checked against the tree."""
    input:
        kitti_raw_data,
        kitti_jpeg_drives(kitti_test_drives()),
        kitti_split_file_input,
    output:
        f"results/kitti/splits/{{split,{KITTI_SPLIT_WILDCARD}}}/test_files.txt",
    log:
        "logs/make_test_split/{split}.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        raw_root=kitti_root,
        image_root=kitti_image_root,
        ext=kitti_image_ext,
        demo=USE_DEMO_KITTI,
        demo_drives=DEMO["kitti"]["test_drives"],
        demo_stride=DEMO["kitti"]["test_stride"],
        split_file=lambda wc: split_config.split_file(KITTI_TEST_SPLITS[wc.split]) or "",
    script:
        "../workflow_scripts/make_test_split.py"


rule export_gt_depth:
    """Eigen-protocol ground truth of a test split (LiDAR, or annotated maps for *_benchmark)."""
    input:
        kitti_raw_data,
        split="results/kitti/splits/{split}/test_files.txt",
    output:
        f"results/kitti/gt/{{split,{KITTI_SPLIT_WILDCARD}}}.npz",
    log:
        "logs/export_gt_depth/{split}.log",
    benchmark:
        "benchmarks/export_gt_depth/{split}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    params:
        raw_root=kitti_root,
        gt=KITTI["gt"],
    script:
        "../workflow_scripts/export_gt_depth.py"


rule export_monodepth2_gt:
    """Optional: the same ground truth as monodepth2's gt_depths.npz (object array)."""
    input:
        "results/kitti/gt/{split}.npz",
    output:
        f"results/kitti/gt/{{split,{KITTI_SPLIT_WILDCARD}}}_gt_depths.npz",
    log:
        "logs/export_monodepth2_gt/{split}.log",
    conda:
        "../envs/depth-workflow.yaml"
    script:
        "../workflow_scripts/export_monodepth2_gt.py"


rule filter_frames:
    """SC-Depth frame-index selection of one drive."""
    input:
        kitti_drive_images,
    output:
        r"results/kitti/frame_index/{date,\d{4}_\d{2}_\d{2}}/{drive,\d{4}_\d{2}_\d{2}_drive_\d{4}_sync}.txt",
    log:
        "logs/filter_frames/{date}/{drive}.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        image_root=kitti_image_root,
        ext=kitti_image_ext,
        filter=KITTI["filter"],
    script:
        "../workflow_scripts/filter_frames.py"


rule make_splits:
    """Train/val lists: from the filtered frames, or the references' lists (real KITTI)."""
    input:
        kitti_raw_data,
        kitti_jpeg_drives(kitti_train_drives()),
        indices=(
            expand("results/kitti/frame_index/{d}.txt", d=kitti_train_drives())
            if kitti_split_source() == "filtered"
            else []
        ),
        tests=expand("results/kitti/splits/{s}/test_files.txt", s=KITTI_TEST_SPLITS),
    output:
        train="results/kitti/splits/train_files.txt",
        val="results/kitti/splits/val_files.txt",
    log:
        "logs/make_splits/make_splits.log",
    conda:
        "../envs/depth-workflow.yaml"
    params:
        source=kitti_split_source(),
        splits=KITTI["splits"],
        raw_root=kitti_root,
        image_root=kitti_image_root,
        ext=kitti_image_ext,
        seed=config["seed"],
    script:
        "../workflow_scripts/make_splits.py"


rule precompute_depth_hints:
    """Fused SGM depth hints (12 SGBM settings) of one shard of a drive's train/val frames (frame
    numbers [k x shard_frames, (k + 1) x shard_frames)), both cameras."""
    input:
        kitti_drive_images,
        train="results/kitti/splits/train_files.txt",
        val="results/kitti/splits/val_files.txt",
    output:
        directory(
            r"results/kitti/depth_hints/shards/{date,\d{4}_\d{2}_\d{2}}/{drive,\d{4}_\d{2}_\d{2}_drive_\d{4}_sync}/{shard,\d+}"
        ),
    log:
        "logs/precompute_depth_hints/{date}/{drive}/{shard}.log",
    benchmark:
        "benchmarks/precompute_depth_hints/{date}/{drive}/{shard}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: 8
    resources:
        mem_mb=lambda wc, threads, attempt: hint_resources(wc, threads, attempt)["mem_mb"],
        runtime=lambda wc, threads, attempt: hint_resources(wc, threads, attempt)["runtime"],
    params:
        raw_root=kitti_root,
        image_root=kitti_image_root,
        ext=kitti_image_ext,
        hints=KITTI["depth_hints"],
    script:
        "../workflow_scripts/precompute_depth_hints.py"


# linking files takes a second: never a cluster job
localrules:
    merge_depth_hints,


rule merge_depth_hints:
    """A drive's hints, complete when all its shards are: their files linked into one folder."""
    input:
        kitti_hint_shards,
    output:
        directory(
            r"results/kitti/depth_hints/{date,\d{4}_\d{2}_\d{2}}/{drive,\d{4}_\d{2}_\d{2}_drive_\d{4}_sync}"
        ),
    log:
        "logs/merge_depth_hints/{date}/{drive}.log",
    conda:
        "../envs/depth-workflow.yaml"
    script:
        "../workflow_scripts/merge_depth_hints.py"
