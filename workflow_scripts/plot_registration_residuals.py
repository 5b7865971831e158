"""Rule plot_registration_residuals: histograms of one sequence's residual distances to the CT
after registration, one curve per training stage."""

import logging
from pathlib import Path

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.registration import read_residuals, residual_figure, residual_stats

log = logging.getLogger("plot_registration_residuals")


def main(residual_paths: list[Path], stages: list[str], seq: str, out: Path, bins: int) -> dict:
    residuals = {s: read_residuals(p) for s, p in zip(stages, residual_paths, strict=True)}
    save_png(residual_figure(residuals, f"{seq}: registered clouds to the CT surface", bins=bins), out)
    stats = {s: residual_stats(r) for s, r in residuals.items()}
    log.info("%s: %s", out, stats)
    return stats


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main([Path(p) for p in smk.input], list(smk.params.stages), smk.wildcards.seq, Path(smk.output[0]),
         smk.params.bins)
