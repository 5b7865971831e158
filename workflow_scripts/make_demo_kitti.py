"""Rule make_demo_kitti: synthetic drives in the KITTI raw layout (see demo/kitti_demo.py)."""


import logging
import time
from pathlib import Path

from workflow_scripts.demo.kitti_demo import KittiDemoConfig, generate
from workflow_scripts.util.options import load_options

log = logging.getLogger("make_demo_kitti")


def main(out_root: Path, cfg: KittiDemoConfig, seed: int, threads: int) -> dict:
    start = time.perf_counter()
    summary = generate(out_root, cfg, seed, workers=threads)
    log.info("demo KITTI drives %s written to %s in %.1f s", summary["drives"], out_root,
             time.perf_counter() - start)
    return summary


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.output[0]), load_options(KittiDemoConfig, smk.params.demo, "demo.kitti"), smk.params.seed,
         smk.threads)
