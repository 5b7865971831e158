"""Rule make_demo_endoscopy: demo videos, camera.yaml, CT surface (see demo/endo_demo.py)."""

import logging
import time
from pathlib import Path

from workflow_scripts.demo.endo_demo import EndoDemoConfig, generate
from workflow_scripts.util.options import load_options

log = logging.getLogger("make_demo_endoscopy")


def main(out_dir: Path, cfg: EndoDemoConfig, seed: int, threads: int) -> dict:
    start = time.perf_counter()
    summary = generate(out_dir, cfg, seed, workers=threads)
    log.info("demo endoscopy %s written to %s in %.1f s", summary, out_dir, time.perf_counter() - start)
    return summary


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(
        Path(smk.output[0]),
        load_options(EndoDemoConfig, smk.params.demo, "demo.endoscopy"),
        smk.params.seed,
        smk.threads,
    )
