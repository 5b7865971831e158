# SGDepth's additions to the driving branch (docs/driving.md): the labelled images of the
# segmentation branch, the stages with a segmentation head, the unmasked controls of the masked
# stages, the test frames' labels. A section of common.smk in a file of its own.


def kitti_labels_root(wildcards=None):
    """Cityscapes-format training labels: kitti.train.common.labels, the demo's on the demo."""
    labels = KITTI["train"]["common"]["labels"]
    if labels or not USE_DEMO_KITTI:
        return labels
    return os.path.join(DEMO["kitti"]["root"], "cityscapes")


def kitti_test_labels_root():
    """Labels of the test frames: kitti.evaluate.labels, the demo's on the demo, else ""."""
    labels = KITTI["evaluate"]["labels"]
    if labels or not USE_DEMO_KITTI:
        return labels
    return os.path.join(DEMO["kitti"]["root"], "cityscapes")


MASKABLE_STAGES = ("teacher", "finetune")  # the stages that can train on temporal frames
# every driving stage with a model, in the chain's order, each maskable stage's control after it
KITTI_MODEL_STAGES = [x for s in TRAIN_STAGES for x in [s] + [f"{s}_unmasked"] * (s in MASKABLE_STAGES)]
KITTI_MODEL_STAGE_WILDCARD = "|".join(KITTI_MODEL_STAGES)


def kitti_stage_order(stages):
    """``stages`` in the chain's order, each masked stage's control after it, constant last."""
    return [s for s in KITTI_MODEL_STAGES + ["constant"] if s in stages]


def kitti_masking_controls(stages=None):
    """The unmasked controls (``<stage>_unmasked``) of the masked stages among ``stages``
    (default: every stage) that ask for one (kitti.train.<stage>.masking.control)."""
    train = KITTI["train"]
    return [
        f"{s}_unmasked"
        for s in MASKABLE_STAGES
        if (stages is None or s in stages)
        and train[s]["masking"]["enabled"]
        and train[s]["masking"]["control"]
    ]


def kitti_seg_stages():
    """Stages whose model has a segmentation head: those that enable it, and the fine-tune
    (and its control) of a student that has one."""
    train = KITTI["train"]
    stages = [s for s in TRAIN_STAGES if train[s]["segmentation"]["enabled"]]
    if "student" in stages and "finetune" not in stages:
        stages.append("finetune")
    return kitti_stage_order(stages + kitti_masking_controls(stages))


def kitti_seg_targets():
    """results/kitti_seg_eval.csv when a stage has a segmentation head and the test frames have
    labels."""
    return ["results/kitti_seg_eval.csv"] if kitti_seg_stages() and kitti_test_labels_root() else []


def kitti_eval_labels(wildcards=None):
    """The test frames' trainIds for abs_rel_movable (nothing without labels)."""
    if not kitti_test_labels_root():
        return {}
    return {"labels": f"results/kitti/gt/{KITTI_EVAL_SPLIT}_labels.npz"}


def unmasked_train_inputs(wildcards):
    """Inputs of a masked stage's control: the stage's own."""
    return train_inputs(wildcards.stage)(wildcards)


def unmasked_train_params(wildcards):
    """A masked stage's params with the masking off: its control."""
    train = KITTI["train"]
    # the masking's other settings do not matter without it: not rerun triggers of the control
    section = {**train[wildcards.stage], "masking": {"enabled": False}}
    return {"common": train["common"], "section": section}


def unmasked_train_runtime(wildcards, attempt):
    """Wall time of a control: that of its stage."""
    return train_runtime(wildcards.stage)(wildcards, attempt)


def kitti_masked_stage():
    """The masked stage the report's masking figure shows (the first with a control), or None."""
    controls = kitti_masking_controls(KITTI["evaluate"]["stages"])
    return controls[0].removesuffix("_unmasked") if controls else None


def kitti_semantic_report():
    """The masking figure, when a masked stage has its control and the test frames labels."""
    if kitti_masked_stage() and kitti_test_labels_root():
        return ["results/kitti/report/masking.png"]
    return []


def kitti_masking_figure_inputs(wildcards):
    """The masked stage's segmentation and depth, and its control's depth."""
    stage, split = kitti_masked_stage(), KITTI_EVAL_SPLIT
    return {
        "seg": f"results/kitti/pred/{stage}/{split}_seg.npy",
        "masked": f"results/kitti/pred/{stage}/{split}_disps.npy",
        "unmasked": f"results/kitti/pred/{stage}_unmasked/{split}_disps.npy",
    }
