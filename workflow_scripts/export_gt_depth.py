"""Rule export_gt_depth: ground truth of a test split (Eigen protocol), stored without pickle."""


import logging
import time
from pathlib import Path

from workflow_scripts.kitti.gt_depth import GtOptions
from workflow_scripts.kitti.gt_export import GtConfig, GtSet, export_split, save_gt, split_source
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.util.options import load_options

log = logging.getLogger("export_gt_depth")


def main(split_path: Path, out: Path, split: str, raw_root: Path, options: GtOptions) -> GtSet:
    start = time.perf_counter()
    lines = read_split(split_path)
    gt = export_split(lines, raw_root, split_source(split), options)
    save_gt(out, gt)
    log.info("%s: %d frames, %d ground-truth pixels (%s) in %.1f s", split, len(gt), gt.depth.size,
             gt.meta, time.perf_counter() - start)
    return gt


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.split), Path(smk.output[0]), smk.wildcards.split, Path(smk.params.raw_root),
         load_options(GtConfig, smk.params.gt, "kitti.gt"))
