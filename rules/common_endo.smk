# Input and parameter functions of the endoscopy branch's rules (endo_prep.smk, endo_eval.smk and
# the endoscopy figures of report.smk): which sequences there are, their patients, the train / test
# split (endoscopy.split) and each patient's CT. Layouts: workflow_scripts/endo/layout.py.
from snakemake.logging import logger

from workflow_scripts.endo.layout import EndoSequence, discover, patient_camera, patient_ct, resolve_split

ENDO_FORMAT = ENDO["format"]

if ENDO_FORMAT == "liu" and USE_DEMO_ENDO:
    raise ValueError("endoscopy.format 'liu' needs endoscopy.root (the demo data are videos)")


def _endo_layout():
    """{name: EndoSequence} of the configured sequences: the demo's (from its config: the files are
    generated later), else what endoscopy.root holds, narrowed to endoscopy.sequences."""
    root = Path(endo_root())
    if USE_DEMO_ENDO:
        found = [
            EndoSequence(s["name"], s["patient"], root / s["patient"] / f"{s['name']}.mp4")
            for s in DEMO["endoscopy"]["sequences"]
        ]
    else:
        found = discover(root, ENDO_FORMAT)
    by_name = {s.name: s for s in found}
    if ENDO["sequences"]:
        missing = [n for n in ENDO["sequences"] if n not in by_name]
        if missing:
            raise WorkflowError(
                f"config endoscopy.sequences names {', '.join(missing)}, not found in {root} "
                f"(found: {', '.join(sorted(by_name)) or 'none'}). Fix the names or endoscopy.root"
            )
        by_name = {n: by_name[n] for n in ENDO["sequences"]}
    return by_name


ENDO_LAYOUT = _endo_layout()
try:
    ENDO_SIDE = resolve_split(list(ENDO_LAYOUT.values()), ENDO["split"]["train"], ENDO["split"]["test"])
except ValueError as err:
    raise WorkflowError(str(err)) from None


def endo_sequences():
    """Every sequence name (both sides of the split), sorted."""
    return sorted(ENDO_LAYOUT)


def endo_train_sequences():
    """The sequences the training stages read (the training side of endoscopy.split)."""
    return [s for s in endo_sequences() if ENDO_SIDE[s] == "train"]


def endo_patient(seq):
    """The patient of a sequence ("" = the root's own sequences)."""
    return ENDO_LAYOUT[seq].patient


def endo_source(wildcards):
    """The video or frame folder of a sequence."""
    return str(ENDO_LAYOUT[wildcards.seq].source)


def endo_camera(wildcards):
    """camera.yaml of the sequence's patient (its own, else endoscopy.root's)."""
    return str(patient_camera(endo_root(), endo_patient(wildcards.seq)))


def endo_frames(seq):
    """The frames the networks read: extract_frames' output, or the reference-format folder
    itself (its SfM names its own undistorted frames: never re-extracted or strided)."""
    if ENDO_FORMAT == "liu":
        return str(ENDO_LAYOUT[seq].source)
    return f"results/endo/{seq}/frames"


def endo_frames_input(wildcards):
    return endo_frames(wildcards.seq)


def extract_frames_input(wildcards):
    """The demo folder (built by make_demo_endoscopy) or the sequence's source + camera.yaml."""
    if USE_DEMO_ENDO:
        return {"data": endo_root()}
    return {"source": endo_source(wildcards), "camera": endo_camera(wildcards)}


def prepare_sfm_data_input(wildcards):
    """run_sfm's model and frames, or the sequence's folder in the reference's format."""
    if ENDO_FORMAT == "liu":
        return {"liu": str(ENDO_LAYOUT[wildcards.seq].source)}
    return {
        "frames": f"results/endo/{wildcards.seq}/frames",
        "sfm": f"results/endo/{wildcards.seq}/sfm",
    }


def endo_prep_targets():
    """sfm_data of every sequence (the end of the data preparation)."""
    return expand("results/endo/{seq}/sfm_data.npz", seq=endo_sequences())


# ---------------------------------------------------------------- CT surfaces and registration
def _demo_ct(seq):
    """Whether a demo sequence registers to the generated CT of its patient (no CT configured)."""
    return USE_DEMO_ENDO and not ENDO["ct_surfaces"].get(endo_patient(seq)) and not ENDO["ct_surface"]


def _ct_of(seq):
    """The CT of a sequence's patient (demo: the generated file, known before it exists; or the
    configured one)."""
    patient = endo_patient(seq)
    if _demo_ct(seq):
        return Path(endo_root()) / patient / "ct_surface.ply"
    if USE_DEMO_ENDO and patient not in ENDO["ct_surfaces"]:
        return Path(ENDO["ct_surface"]) if os.path.isfile(ENDO["ct_surface"]) else None
    return patient_ct(endo_root(), patient, ENDO["ct_surfaces"], ENDO["ct_surface"])


ENDO_CT = {seq: _ct_of(seq) for seq in endo_sequences()}
for _patient in sorted({endo_patient(s) for s in endo_sequences() if ENDO_CT[s] is None}):
    logger.warning(
        f"endoscopy: no CT surface for patient {_patient or '(endoscopy.root)'} "
        f"({', '.join(s for s in endo_sequences() if endo_patient(s) == _patient)}): depth metrics only, "
        "no registration. Put ct_surface.ply in the patient's folder or set endoscopy.ct_surfaces"
    )


def endo_registered_sequences():
    """The sequences whose patient has a CT (registered; the others get depth metrics only)."""
    return [s for s in endo_sequences() if ENDO_CT[s] is not None]


def endo_ct_surface(wildcards):
    """The CT surface (mm) of the sequence's patient; also a params function."""
    return str(ENDO_CT[wildcards.seq])


def endo_ct_input(wildcards):
    """Input holding the CT: on the demo the folder make_demo_endoscopy writes (a directory
    output, which holds the CTs), else the patient's CT file."""
    if _demo_ct(wildcards.seq):
        return {"demo": endo_root()}
    return {"ct": endo_ct_surface(wildcards)}


def endo_eval_stages():
    """Rows of results/endo_eval.csv: endoscopy.evaluate.stages (trained stages and the
    constant baseline)."""
    return list(ENDO["evaluate"]["stages"])


def endo_eval_keys(registered=False):
    """stage/sequence pairs of the table in row order (registered: only sequences with a CT)."""
    seqs = endo_registered_sequences() if registered else endo_sequences()
    return [f"{st}/{seq}" for st in endo_eval_stages() for seq in seqs]


def endo_eval_rows():
    """Params of endo_eval_table: each row's stage, sequence, patient, side of the split and
    whether it has a registration."""
    registered = set(endo_registered_sequences())
    return [
        {
            "stage": st,
            "sequence": seq,
            "patient": endo_patient(seq),
            "split": ENDO_SIDE[seq],
            "registered": seq in registered,
        }
        for st in endo_eval_stages()
        for seq in endo_sequences()
    ]


def register_ct_input(wildcards):
    """The fused cloud and sfm_data; the CT surface (on the demo: the demo folder, which holds
    it and the true camera poses); the manual initial pose file when configured."""
    files = {
        "cloud": f"results/endo/pointclouds/{wildcards.stage}/{wildcards.seq}/fused.ply",
        "sfm_data": f"results/endo/{wildcards.seq}/sfm_data.npz",
        **endo_ct_input(wildcards),
    }
    pattern = ENDO["register"]["initial_poses"]
    if pattern:
        files["initial_poses"] = pattern.format(seq=wildcards.seq)
    return files


def register_ct_truth(wildcards):
    """The demo's true camera poses of the sequence (the check in the JSON); "" for real data."""
    return f"{endo_root()}/gt/{wildcards.seq}/poses.npz" if USE_DEMO_ENDO else ""


# ------------------------------------------------------- depth for new videos (predict_endo_video)
def _new_videos():
    """{name: path} of endoscopy.predict.videos (names unique)."""
    out = {}
    for video in ENDO["predict"]["videos"]:
        name = Path(video).stem if Path(video).suffix else Path(video).name
        if name in out:
            raise WorkflowError(
                f"config endoscopy.predict.videos: {video} and {out[name]} have the same name {name!r} "
                "(results/endo/new/<name>/): rename one"
            )
        out[name] = video
    return out


ENDO_NEW_VIDEOS = _new_videos()


def endo_new_video_targets():
    return [f"results/endo/new/{name}" for name in ENDO_NEW_VIDEOS]


def _in_demo(path):
    return USE_DEMO_ENDO and Path(path).resolve().is_relative_to(Path(endo_root()).resolve())


def predict_endo_video_input(wildcards):
    """The stage's model and the video (on the demo, a video inside the demo folder: the folder)."""
    source, camera = endo_new_video_params(wildcards).values()
    files = {"model": f"results/endo/train/{ENDO['predict']['stage']}/model.pt"}
    if _in_demo(source) or _in_demo(camera):
        files["demo"] = endo_root()
    for key, path in (("source", source), ("camera", camera)):
        if not _in_demo(path):
            files[key] = path
    return files


def endo_new_video_params(wildcards):
    """{"source": the video, "camera": its camera.yaml}."""
    camera = ENDO["predict"]["camera"] or str(Path(endo_root()) / "camera.yaml")
    return {"source": ENDO_NEW_VIDEOS[wildcards.video], "camera": camera}


# --------------------------------------------------------------------- report figures (report.smk)
def sfm_summary_inputs(wildcards):
    """sfm_data of a sequence and, when the model came from run_sfm, its folder (summary.json)."""
    base = f"results/endo/{wildcards.seq}"
    files = {"npz": f"{base}/sfm_data.npz", "info": f"{base}/sfm_data.json"}
    if ENDO_FORMAT != "liu":
        files["sfm"] = f"{base}/sfm"
    return files


def registration_view_inputs(wildcards):
    """Registered cloud, its residuals, its JSON (for the runner-up) and the CT (endo_ct_input)."""
    base = f"results/endo/registration/{wildcards.stage}/{wildcards.seq}"
    files = {"cloud": f"{base}.ply", "residuals": f"{base}_residuals.npy", "registration": f"{base}.json"}
    return {**files, **endo_ct_input(wildcards)}


def registration_residuals(wildcards):
    """Residuals and JSONs (the flags) of every stage's registration of a sequence
    (plot_registration_residuals)."""
    base = "results/endo/registration/{stage}/{seq}"
    stages = endo_eval_stages()
    return {
        "residuals": expand(base + "_residuals.npy", stage=stages, seq=wildcards.seq),
        "registrations": expand(base + ".json", stage=stages, seq=wildcards.seq),
    }
