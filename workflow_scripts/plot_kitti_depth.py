"""Rule plot_kitti_depth: evenly spread test frames with their LiDAR ground truth, every stage's
depth scaled as results/kitti_eval.csv's median rows scale it (one colour scale in metres) and
the last trained stage's abs_rel error map (workflow_scripts/report/kitti_depth.py)."""

import logging
from pathlib import Path

from workflow_scripts.kitti.evaluate import EvalOptions
from workflow_scripts.kitti.raw import image_path
from workflow_scripts.report.depth import read_rgb, select_frames
from workflow_scripts.report.figure import save_png
from workflow_scripts.report.kitti_depth import (
    error_stage,
    frames_figure,
    load_split_gt,
    load_stage_disparities,
    pipeline_order,
    scale_frame,
)

log = logging.getLogger("plot_kitti_depth")


def main(gt_path: Path, disps: dict[str, Path], split_path: Path, image_root: Path, image_ext: str,
         opts: EvalOptions, out: Path, n_frames: int) -> list[int]:
    """Figure of ``n_frames`` evenly spread test frames for the stages of ``disps`` (stage ->
    disparities .npy); returns the frames' rows in the split."""
    lines, gt_set = load_split_gt(gt_path, split_path)
    rows = select_frames(len(lines), n_frames).tolist()
    gts = [gt_set.dense(r) for r in rows]
    stages = {}
    for stage in pipeline_order(list(disps)):
        maps = load_stage_disparities(disps[stage], stage, len(lines))
        stages[stage] = [scale_frame(gt, maps[r], opts) for gt, r in zip(gts, rows, strict=True)]
    shown = [lines[r] for r in rows]
    images = [read_rgb(image_path(image_root / ln.folder, ln.cam, ln.frame, image_ext)) for ln in shown]
    titles = [f"{ln.drive.removesuffix('_sync')}\nframe {ln.frame} ({ln.side})" for ln in shown]
    scaling = "per-frame median scaling" if opts.scaling == "median" else f"scale ×{opts.fixed_scale:g}"
    title = (f"KITTI {split_path.parent.name} test split: depth per stage ({scaling}, as in "
             "results/kitti_eval.csv)")
    fig = frames_figure(images, gts, stages, error_stage(list(stages)), titles, title, opts)
    save_png(fig, out)
    log.info("%s: frames %s, stages %s", out, rows, list(stages))
    return rows


if __name__ == "__main__":
    from workflow_scripts.kitti.evaluate import KittiEvalOptions, eval_options
    from workflow_scripts.util.options import load_options
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    evaluate = load_options(KittiEvalOptions, smk.params.evaluate, "kitti.evaluate")
    main(Path(smk.input.gt), {s: Path(smk.input[s]) for s in smk.params.stages}, Path(smk.input.split),
         Path(smk.params.image_root), smk.params.image_ext,
         eval_options(evaluate, "median", smk.params.stereo_baseline), Path(smk.output[0]), smk.params.frames)
