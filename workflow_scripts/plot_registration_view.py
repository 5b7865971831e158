"""Rule plot_registration_view: a registered cloud on the whole CT surface, three orthographic
views, points coloured by their residual on a fixed scale (report.residual_max_mm); below, the
cloud under the true pose (demo: truth.ct_from_sfm of the JSON) and under an AMBIGUOUS
registration's runner-up pose. The title says how confident the registration is and, on the
demo, how far it is from the true pose."""

import logging
from pathlib import Path

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.registration import read_residuals
from workflow_scripts.report.registration_view import (
    cloud_on_ct_figure,
    other_poses,
    read_registration,
    registration_verdict,
)
from workflow_scripts.util.ply import read_ply

log = logging.getLogger("plot_registration_view")


def main(
    cloud_path: Path,
    residuals_path: Path,
    ct_path: Path,
    stage: str,
    seq: str,
    out: Path,
    seed: int = 0,
    registration_path: Path | None = None,
    residual_max_mm: float = 5.0,
) -> dict:
    """Draw the figure; returns its verdict (title text), whether it is alarming (red) and its
    number of rows (1 + true pose + runner-up)."""
    ct = read_ply(ct_path, need_faces=True)
    cloud = read_ply(cloud_path).vertices
    residuals = read_residuals(residuals_path, n_points=len(cloud))
    registration = read_registration(registration_path)
    verdict = registration_verdict(registration) if registration else ("", False)
    others = other_poses(cloud, registration)
    fig = cloud_on_ct_figure(ct.vertices, ct.faces, cloud, residuals,
                             f"{seq}, {stage} stage: fused cloud registered to the CT surface (whole CT, mm)",
                             residual_max_mm, others, verdict, seed=seed)
    save_png(fig, out)
    log.info("%s: %d points on %d CT triangles; %s", out, len(cloud), len(ct.faces), verdict[0] or "no JSON")
    return {"verdict": verdict[0], "alarming": verdict[1], "rows": 1 + len(others)}


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(
        Path(smk.input.cloud),
        Path(smk.input.residuals),
        Path(smk.params.ct),
        smk.wildcards.stage,
        smk.wildcards.seq,
        Path(smk.output[0]),
        smk.params.seed,
        Path(smk.input.registration),
        smk.params.residual_max_mm,
    )
