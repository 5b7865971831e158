# Endoscopy branch, data preparation: video -> frames -> COLMAP SfM -> sparse supervision.
# One job per sequence; library code in workflow_scripts/endo/.
from pathlib import Path

ENDO_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv")
ENDO_FORMAT = config["endoscopy"]["format"]

if ENDO_FORMAT == "liu" and USE_DEMO_ENDO:
    raise ValueError(
        "endoscopy.format 'liu' needs endoscopy.root (the demo data are videos)"
    )


def endo_sequences():
    """Sequence names: endoscopy.sequences, else the demo's, else what endoscopy.root holds
    (<seq>.<video> files and <seq>/ folders; with format 'liu', folders with motion.yaml)."""
    if config["endoscopy"]["sequences"]:
        return list(config["endoscopy"]["sequences"])
    if USE_DEMO_ENDO:
        return [s["name"] for s in config["demo"]["endoscopy"]["sequences"]]
    root = Path(endo_root())
    if not root.is_dir():
        return []
    names = set()
    for p in root.iterdir():
        if p.name.startswith("."):
            continue
        if ENDO_FORMAT == "liu":
            if (p / "motion.yaml").is_file():
                names.add(p.name)
        elif p.is_file() and p.suffix.lower() in ENDO_VIDEO_SUFFIXES:
            names.add(p.stem)
        elif p.is_dir() and any(f.suffix.lower() in (".jpg", ".png") for f in p.iterdir()):
            names.add(p.name)
    return sorted(names)


def endo_source(wildcards):
    """The video (<root>/<seq>.<ext>) or frame folder (<root>/<seq>/) of a sequence."""
    root = Path(endo_root())
    if USE_DEMO_ENDO:
        return str(root / f"{wildcards.seq}.mp4")
    for suffix in ENDO_VIDEO_SUFFIXES:
        video = root / f"{wildcards.seq}{suffix}"
        if video.is_file():
            return str(video)
    return str(root / wildcards.seq)


def endo_camera(wildcards):
    return str(Path(endo_root()) / "camera.yaml")


def extract_frames_input(wildcards):
    """The demo folder (built by make_demo_endoscopy) or the sequence's source + camera.yaml."""
    if USE_DEMO_ENDO:
        return {"data": endo_root()}
    return {"source": endo_source(wildcards), "camera": endo_camera(wildcards)}


def prepare_sfm_data_input(wildcards):
    """run_sfm's model and frames, or the sequence's folder in the reference's format."""
    if ENDO_FORMAT == "liu":
        return {"liu": str(Path(endo_root()) / wildcards.seq)}
    return {
        "frames": f"results/endo/{wildcards.seq}/frames",
        "sfm": f"results/endo/{wildcards.seq}/sfm",
    }


def endo_prep_targets():
    """sfm_data of every sequence (the end of the data preparation)."""
    return expand("results/endo/{seq}/sfm_data.npz", seq=endo_sequences())


wildcard_constraints:
    seq="[A-Za-z0-9_.-]+",


rule extract_frames:
    """Decode (or read) the frames, undistort with camera.yaml, write the FOV mask and
    frames.csv; frames keep their original index as name."""
    input:
        unpack(extract_frames_input),
    output:
        directory("results/endo/{seq}/frames"),
    params:
        source=endo_source,
        camera=endo_camera,
        frames=config["endoscopy"]["frames"],
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/extract_frames/{seq}.log",
    benchmark:
        "benchmarks/extract_frames/{seq}.tsv"
    script:
        "../workflow_scripts/extract_frames.py"


rule run_sfm:
    """COLMAP SfM with pycolmap: SIFT (known PINHOLE K, masked), sequential matching,
    incremental mapping; keeps the largest model (binary) and a summary."""
    input:
        frames="results/endo/{seq}/frames",
    output:
        directory("results/endo/{seq}/sfm"),
    params:
        sfm=config["endoscopy"]["sfm"],
        seed=config["seed"],
    threads: 4
    conda:
        "../envs/depth-workflow.yaml"
    log:
        main="logs/run_sfm/{seq}.log",
        colmap="logs/run_sfm/{seq}.colmap.log",
    benchmark:
        "benchmarks/run_sfm/{seq}.tsv"
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
    params:
        sfm_data=config["endoscopy"]["sfm_data"],
    conda:
        "../envs/depth-workflow.yaml"
    log:
        "logs/prepare_sfm_data/{seq}.log",
    benchmark:
        "benchmarks/prepare_sfm_data/{seq}.tsv"
    script:
        "../workflow_scripts/prepare_sfm_data.py"
