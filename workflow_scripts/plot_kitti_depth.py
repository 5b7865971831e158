"""Rule plot_kitti_depth: a stage's test-split disparities, colour-mapped, next to the frames."""

import logging
from pathlib import Path

import numpy as np

from workflow_scripts.kitti.raw import image_path
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.report.depth import depth_grid, read_rgb, select_frames
from workflow_scripts.report.figure import save_png
from workflow_scripts.util import InputDataError

log = logging.getLogger("plot_kitti_depth")


def main(disps_path: Path, split_path: Path, image_root: Path, image_ext: str, stage: str, out: Path,
         n_frames: int) -> list[int]:
    """Figure of ``n_frames`` evenly spread test frames; returns their rows in the split."""
    disps = np.load(disps_path, allow_pickle=False)
    lines = read_split(split_path)
    if disps.ndim != 3 or len(disps) != len(lines):
        raise InputDataError(disps_path, f"disparities of shape {disps.shape} for {len(lines)} frames of "
                             f"{split_path}", "re-run predict_depth for this stage")
    rows = select_frames(len(lines), n_frames).tolist()
    shown = [lines[r] for r in rows]
    images = [read_rgb(image_path(image_root / ln.folder, ln.cam, ln.frame, image_ext)) for ln in shown]
    titles = [f"{ln.drive.removesuffix('_sync')}  frame {ln.frame}  ({ln.side})" for ln in shown]
    fig = depth_grid(images, [disps[r] for r in rows], titles,
                     f"KITTI {split_path.parent.name} test split: {stage}",
                     "disparity (min .. 95th percentile)", cmap="magma", panel_width_in=5.0)
    save_png(fig, out)
    log.info("%s: frames %s of %s", out, rows, disps_path)
    return rows


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.disps), Path(smk.input.split), Path(smk.params.image_root), smk.params.image_ext,
         smk.wildcards.stage, Path(smk.output[0]), smk.params.frames)
