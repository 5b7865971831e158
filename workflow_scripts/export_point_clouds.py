"""Rule export_point_clouds: per-frame PLYs (camera frame) and the fused cloud of a sequence
(SfM world frame, SfM units) from a stage's predicted depth (workflow_scripts/endo/pointcloud.py)."""

import json
import logging
from pathlib import Path

from workflow_scripts.endo.pointcloud import PointCloudOptions, export_clouds, load_predicted_depth
from workflow_scripts.endo.sparse import load_sfm_data
from workflow_scripts.util import atomic_dir, write_text_atomic
from workflow_scripts.util.options import load_options

log = logging.getLogger("export_point_clouds")


def main(
    depth: Path,
    sfm_data: Path,
    frames: Path,
    fused: Path,
    frames_out: Path,
    summary: Path,
    options: PointCloudOptions,
) -> dict:
    pred, sfm = load_predicted_depth(depth), load_sfm_data(sfm_data)
    with atomic_dir(frames_out) as tmp:
        info = export_clouds(pred, sfm, frames, fused, tmp if options.frame_plys else None, options)
    write_text_atomic(summary, json.dumps(info, indent=2) + "\n")
    log.info(
        "%s: %d frames, %d points (%d before the voxel grid), %d frames without pose",
        fused,
        len(info["frames"]),
        info["points"],
        info["points_before_voxel"],
        len(info["frames_without_pose"]),
    )
    return info


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(
        Path(smk.input.depth),
        Path(smk.input.sfm_data),
        Path(smk.input.frames),
        Path(smk.output.fused),
        Path(smk.output.frames),
        Path(smk.output.summary),
        load_options(PointCloudOptions, smk.params.options, "endoscopy.point_clouds"),
    )
