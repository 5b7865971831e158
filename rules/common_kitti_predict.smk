# Input and parameter functions of rules/kitti_predict.smk (kitti.predict: depth for your own images
# or videos; on the demo, the held-out test drive as a video). Uses KITTI, DEMO, USE_DEMO_KITTI,
# kitti_root and kitti_raw_data of rules/common.smk.


def _kitti_predict_inputs():
    """{name: path} of kitti.predict.inputs (names unique): a video or image's stem, a folder's name."""
    out = {}
    for path in KITTI["predict"]["inputs"]:
        name = Path(path).stem if Path(path).suffix else Path(path).name
        if name in out:
            raise WorkflowError(
                f"config kitti.predict.inputs: {path} and {out[name]} have the same name {name!r} "
                "(results/kitti/predict/<stage>/<name>/): rename one, or link it under another name"
            )
        out[name] = path
    return out


KITTI_PREDICT_INPUTS = _kitti_predict_inputs()


def kitti_predict_targets():
    """results/kitti/predict/<kitti.predict.stage>/<name> of every kitti.predict.inputs entry."""
    stage = KITTI["predict"]["stage"]
    return [f"results/kitti/predict/{stage}/{name}" for name in KITTI_PREDICT_INPUTS]


def predict_images_input(wildcards):
    """The stage's model and the input (a video or folder of the user's, or the demo's video)."""
    if wildcards.name not in KITTI_PREDICT_INPUTS:
        raise WorkflowError(
            f"results/kitti/predict/{wildcards.stage}/{wildcards.name}: {wildcards.name!r} is not the name "
            f"of an entry of config kitti.predict.inputs ({sorted(KITTI_PREDICT_INPUTS)}): add the video "
            "or image folder there"
        )
    return {
        "model": f"results/kitti/train/{wildcards.stage}/model.pt",
        "source": KITTI_PREDICT_INPUTS[wildcards.name],
    }


def kitti_demo_video_images(wildcards):
    """The image_02/data folder of the demo test drive named ``wildcards.drive``."""
    drives = {Path(d).name: d for d in DEMO["kitti"]["test_drives"]}
    if not USE_DEMO_KITTI or wildcards.drive not in drives:
        raise WorkflowError(
            f"results/kitti/demo_video/{wildcards.drive}.mp4: made only from a test drive of the embedded "
            f"demo ({sorted(drives)}, with kitti.root empty); for your own data list your video or "
            "image folder in kitti.predict.inputs"
        )
    return f"{kitti_root()}/{drives[wildcards.drive]}/image_02/data"
