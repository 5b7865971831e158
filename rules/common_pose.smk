# Pose evaluation of the driving branch (kitti_pose.smk, docs/driving.md "Pose evaluation"): the
# odometry sequences (kitti.pose_eval.odometry_root, or the demo's test drives exported to
# results/kitti/odometry/ as 00, 01, ...), the stages with a pose network, the predictions.
# A section of common.smk in a file of its own.
from workflow_scripts.kitti.pose_eval import demo_sequence_names

KITTI_POSE = KITTI["pose_eval"]
KITTI_ODOMETRY_DEMO = "results/kitti/odometry"


def kitti_pose_root(wildcards=None):
    """Odometry root the pose evaluation reads: kitti.pose_eval.odometry_root, the demo's export
    on the demo, else "" (no pose evaluation); also a params function."""
    if KITTI_POSE["odometry_root"]:
        return KITTI_POSE["odometry_root"]
    return KITTI_ODOMETRY_DEMO if USE_DEMO_KITTI else ""


def kitti_pose_sequences():
    """Sequences evaluated: kitti.pose_eval.sequences, the exported test drives on the demo."""
    if KITTI_POSE["odometry_root"]:
        return list(KITTI_POSE["sequences"])
    return list(demo_sequence_names(kitti_test_drives()).values()) if USE_DEMO_KITTI else []


def kitti_pose_stages():
    """Stages whose pose network is evaluated: those listed that kitti.evaluate.stages trains ([]
    without odometry data); finetune brings its unmasked control. A listed teacher that trains
    without a pose network stops the workflow."""
    if not kitti_pose_root():
        return []
    chosen = set(KITTI_POSE["stages"])
    if "teacher" in chosen and len(KITTI["train"]["teacher"]["frame_ids"]) < 2:
        raise WorkflowError(
            "config kitti.pose_eval.stages lists teacher, which trains without a pose network "
            "(kitti.train.teacher.frame_ids has no temporal frame). Remove it from the list, or train the "
            "teacher with frame_ids [0, -1, 1]"
        )
    stages = [s for s in ("teacher", "finetune") if s in chosen and s in KITTI["evaluate"]["stages"]]
    return kitti_stage_order(stages + kitti_masking_controls(stages))


def kitti_pose_targets():
    """results/kitti_pose_eval.csv when there are odometry sequences and stages to evaluate."""
    return ["results/kitti_pose_eval.csv"] if kitti_pose_stages() and kitti_pose_sequences() else []


def kitti_pose_data(wildcards=None):
    """Input on the sequences: the demo's export (a DAG output); real data is read in place."""
    return [KITTI_ODOMETRY_DEMO] if kitti_pose_root() == KITTI_ODOMETRY_DEMO else []


def kitti_pose_runs():
    """(stage, sequence) of every prediction, stage-major."""
    return [(stage, seq) for stage in kitti_pose_stages() for seq in kitti_pose_sequences()]


def kitti_pose_inputs(wildcards):
    """evaluate_pose's inputs: the sequences, their pose files (real data), the predictions."""
    root = kitti_pose_root()
    if not root:
        raise WorkflowError(
            "results/kitti_pose_eval.csv needs KITTI odometry data: set kitti.pose_eval.odometry_root to the "
            "folder holding sequences/<nn>/image_2/ and poses/<nn>.txt (docs/driving.md, Pose evaluation)"
        )
    gt = [] if kitti_pose_data() else [f"{root}/poses/{seq}.txt" for seq in kitti_pose_sequences()]
    return {
        "data": kitti_pose_data(),
        "gt": gt,
        "predictions": [f"results/kitti/pose/{stage}/{seq}.npz" for stage, seq in kitti_pose_runs()],
    }
