"""Rule export_monodepth2_gt: a split's ground truth as monodepth2's gt_depths.npz (object array)."""


import logging
from pathlib import Path

from workflow_scripts.kitti.gt_export import load_gt, save_monodepth2_npz

log = logging.getLogger("export_monodepth2_gt")


def main(gt_path: Path, out: Path) -> None:
    gt = load_gt(gt_path)
    save_monodepth2_npz(out, gt)
    log.info("%s: %d maps -> %s (load with allow_pickle=True)", gt_path, len(gt), out)


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input[0]), Path(smk.output[0]))
