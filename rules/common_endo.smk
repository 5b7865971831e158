# Helpers of the endoscopy rules (rules/endoscopy.smk): sequence list and input functions.
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


# ------------------------------------------------ evaluation (rules/endo_eval.smk)
ENDO_EVAL = config["endoscopy"]["evaluate"]


def endo_ct_surface(wildcards=None):
    """The CT surface (mm): endoscopy.ct_surface, else <root>/ct_surface.ply (demo: the
    generated one)."""
    return config["endoscopy"]["ct_surface"] or str(Path(endo_root()) / "ct_surface.ply")


def endo_eval_stages():
    """Rows of results/endo_eval.csv: endoscopy.evaluate.stages (trained stages and the
    constant baseline)."""
    return list(ENDO_EVAL["stages"])


def endo_eval_keys():
    """stage/sequence pairs of the table, in row order."""
    return [f"{st}/{seq}" for st in endo_eval_stages() for seq in endo_sequences()]


def register_ct_input(wildcards):
    """The fused cloud and sfm_data; the CT surface (on the demo: the demo folder, which holds
    it and the true camera poses); the manual initial pose file when configured."""
    files = {
        "cloud": f"results/endo/pointclouds/{wildcards.stage}/{wildcards.seq}/fused.ply",
        "sfm_data": f"results/endo/{wildcards.seq}/sfm_data.npz",
    }
    if USE_DEMO_ENDO and not config["endoscopy"]["ct_surface"]:
        files["demo"] = endo_root()  # a directory output of make_demo_endoscopy
    else:
        files["ct"] = endo_ct_surface()
    pattern = config["endoscopy"]["register"]["initial_poses"]
    if pattern:
        files["initial_poses"] = pattern.format(seq=wildcards.seq)
    return files


def register_ct_truth(wildcards):
    """The demo's true camera poses of the sequence (the check in the JSON); "" for real data."""
    return f"{endo_root()}/gt/{wildcards.seq}/poses.npz" if USE_DEMO_ENDO else ""
