# Endoscopy branch, data preparation (docs/endoscopy.md): video -> frames -> COLMAP SfM -> sparse
# supervision, one job per sequence. Library: workflow_scripts/endo/.


wildcard_constraints:
    seq="[A-Za-z0-9_.-]+",


rule extract_frames:
    """Decode (or read) the frames, undistort with camera.yaml, write the FOV mask and
    frames.csv; frames keep their original index as name."""
    input:
        unpack(extract_frames_input),
    output:
        directory("results/endo/{seq}/frames"),
    log:
        "logs/extract_frames/{seq}.log",
    benchmark:
        "benchmarks/extract_frames/{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    params:
        source=endo_source,
        camera=endo_camera,
        frames=ENDO["frames"],
    script:
        "../workflow_scripts/extract_frames.py"


rule run_sfm:
    """COLMAP SfM with pycolmap: SIFT (known PINHOLE K, masked), sequential matching,
    incremental mapping; keeps the largest model (binary) and a summary."""
    input:
        frames="results/endo/{seq}/frames",
    output:
        directory("results/endo/{seq}/sfm"),
    log:
        main="logs/run_sfm/{seq}.log",
        colmap="logs/run_sfm/{seq}.colmap.log",
    benchmark:
        "benchmarks/run_sfm/{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    threads: ENDO["sfm"]["threads"]
    resources:
        mem_mb=lambda wc, input, attempt: sfm_resources(wc, input, attempt)["mem_mb"],
        runtime=lambda wc, input, attempt: sfm_resources(wc, input, attempt)["runtime"],
    params:
        sfm=ENDO["sfm"],
        seed=config["seed"],
    script:
        "../workflow_scripts/run_sfm.py"


rule prepare_sfm_data:
    """Crop/downsample, adjusted K, global scale, outlier cleaning, visibility window and
    per-frame sparse points: the training supervision of the endoscopy reference."""
    input:
        unpack(prepare_sfm_data_input),
    output:
        npz="results/endo/{seq}/sfm_data.npz",
        json="results/endo/{seq}/sfm_data.json",
    log:
        "logs/prepare_sfm_data/{seq}.log",
    benchmark:
        "benchmarks/prepare_sfm_data/{seq}.tsv"
    conda:
        "../envs/depth-workflow.yaml"
    params:
        sfm_data=ENDO["sfm_data"],
    script:
        "../workflow_scripts/prepare_sfm_data.py"
