"""Rule plot_kitti_per_frame: per-frame abs_rel (median scaling) of every evaluated stage on the
test split, as box plots and a CSV (one row per frame, one column per stage); the stages' means
are results/kitti_eval.csv's abs_rel (workflow_scripts/report/kitti_depth.py)."""

import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.kitti.evaluate import EvalOptions, constant_disparities
from workflow_scripts.report.figure import save_png
from workflow_scripts.report.kitti_depth import (
    load_split_gt,
    load_stage_disparities,
    per_frame_abs_rel,
    per_frame_figure,
    pipeline_order,
)
from workflow_scripts.util import write_table_atomic

log = logging.getLogger("plot_kitti_per_frame")


def main(gt_path: Path, disps: dict[str, Path | None], split_path: Path, opts: EvalOptions, out_png: Path,
         out_csv: Path) -> pd.DataFrame:
    """Per-frame abs_rel of the stages of ``disps`` (stage -> disparities .npy, None = the
    constant-depth baseline); returns the table written to ``out_csv`` (columns row, frame,
    then one per stage in the pipeline's order)."""
    lines, gt_set = load_split_gt(gt_path, split_path)
    gts = list(gt_set.maps())
    table = pd.DataFrame({"row": range(len(lines)), "frame": [ln.text() for ln in lines]})
    for stage in pipeline_order(list(disps)):
        path = disps[stage]
        if path is None:
            maps = constant_disparities(len(gts))
        else:
            maps = load_stage_disparities(path, stage, len(gts))
        table[stage] = per_frame_abs_rel(gts, maps, opts)[0]
    write_table_atomic(out_csv, table)
    stages = list(table.columns[2:])
    scaling = "median scaling" if opts.scaling == "median" else f"scale ×{opts.fixed_scale:g}"
    title = f"abs_rel per frame, {len(lines)} frames of the {split_path.parent.name} test split ({scaling})"
    save_png(per_frame_figure({s: table[s].to_numpy() for s in stages}, title), out_png)
    log.info("%s: mean abs_rel %s", out_png, table[stages].mean().round(6).to_dict())
    return table


if __name__ == "__main__":
    from workflow_scripts.kitti.evaluate import KittiEvalOptions, eval_options
    from workflow_scripts.util.options import load_options
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    evaluate = load_options(KittiEvalOptions, smk.params.evaluate, "kitti.evaluate")
    disps = {s: (None if s == "constant" else Path(smk.input[s])) for s in smk.params.stages}
    opts = eval_options(evaluate, "median", smk.params.stereo_baseline)
    main(Path(smk.input.gt), disps, Path(smk.input.split), opts, Path(smk.output.png), Path(smk.output.csv))
