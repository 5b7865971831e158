"""Rule predict_pose: relative poses of one odometry sequence by a stage's pose network
(workflow_scripts/kitti/pose_predict.py)."""

from pathlib import Path

from workflow_scripts.kitti.pose_predict import predict_sequence_poses

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    predict_sequence_poses(
        Path(smk.input.model),
        smk.wildcards.stage,
        Path(smk.params.root),
        smk.wildcards.seq,
        Path(smk.output[0]),
        smk.params.threads,  # kitti.pose_eval.threads: a setting, not the cores Snakemake granted
    )
