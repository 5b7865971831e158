"""Rule plot_registration_residuals: histograms of one sequence's residual distances to the CT
after registration, one curve per training stage; a stage whose registration is AMBIGUOUS or (on
the demo) far from the true pose is flagged in the legend and the title (its JSON)."""

import logging
from pathlib import Path

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.registration import read_residuals, residual_figure, residual_stats
from workflow_scripts.report.registration_view import read_registration, short_flag

log = logging.getLogger("plot_registration_residuals")


def main(residual_paths: list[Path], stages: list[str], seq: str, out: Path, bins: int,
         registration_paths: list[Path] | None = None) -> dict:
    """Draw the figure; returns {stage: residual_stats (mm) + "flag" (the legend's warning)}."""
    residuals = {s: read_residuals(p) for s, p in zip(stages, residual_paths, strict=True)}
    flags = {s: short_flag(read_registration(p))
             for s, p in zip(stages, registration_paths or [], strict=True)}
    title = f"{seq}: registered clouds to the CT surface"
    save_png(residual_figure(residuals, title, bins=bins, flags=flags), out)
    stats = {s: residual_stats(r) | {"flag": flags.get(s, "")} for s, r in residuals.items()}
    log.info("%s: %s", out, stats)
    return stats


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main([Path(p) for p in smk.input.residuals], list(smk.params.stages), smk.wildcards.seq,
         Path(smk.output[0]), smk.params.bins, [Path(p) for p in smk.input.registrations])
