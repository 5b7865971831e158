# SGDepth's additions to the driving branch (docs/driving.md): the labelled images of the
# segmentation branch, the stages with a segmentation head, the unmasked control of the masked
# fine-tune, the test frames' labels. A section of common.smk in a file of its own.


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


def kitti_masking_control():
    """Whether the unmasked control of the masked fine-tune is trained (finetune_unmasked)."""
    masking = KITTI["train"]["finetune"]["masking"]
    return bool(masking["enabled"] and masking["control"])


def kitti_seg_stages():
    """Stages whose model has a segmentation head: those that enable it, and the fine-tune
    (and its control) of a student that has one."""
    train = KITTI["train"]
    stages = [s for s in TRAIN_STAGES if train[s]["segmentation"]["enabled"]]
    if "student" in stages and "finetune" not in stages:
        stages.append("finetune")
    if "finetune" in stages and kitti_masking_control():
        stages.append("finetune_unmasked")
    return stages


def kitti_seg_targets():
    """results/kitti_seg_eval.csv when a stage has a segmentation head and the test frames have
    labels."""
    return ["results/kitti_seg_eval.csv"] if kitti_seg_stages() and kitti_test_labels_root() else []


def kitti_eval_labels(wildcards=None):
    """The test frames' trainIds for abs_rel_movable (nothing without labels)."""
    if not kitti_test_labels_root():
        return {}
    return {"labels": f"results/kitti/gt/{KITTI_EVAL_SPLIT}_labels.npz"}


def unmasked_train_params(wildcards):
    """The fine-tune's params with the masking off: the control stage."""
    train = KITTI["train"]
    section = {**train["finetune"], "masking": {**train["finetune"]["masking"], "enabled": False}}
    return {"common": train["common"], "section": section}


def kitti_semantic_report():
    """The masking figure, when the masked fine-tune has its control and the test frames labels."""
    if kitti_masking_control() and kitti_test_labels_root():
        return ["results/kitti/report/masking.png"]
    return []
