"""Rule plot_registration_view: a registered cloud on the CT surface, three orthographic views,
points coloured by their residual."""

import logging
from pathlib import Path

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.registration import cloud_on_ct_figure, read_residuals
from workflow_scripts.util.ply import read_ply

log = logging.getLogger("plot_registration_view")


def main(cloud_path: Path, residuals_path: Path, ct_path: Path, stage: str, seq: str, out: Path,
         seed: int = 0) -> None:
    ct = read_ply(ct_path, need_faces=True)
    ct_verts, ct_tris = ct.vertices, ct.faces
    cloud = read_ply(cloud_path).vertices
    residuals = read_residuals(residuals_path, n_points=len(cloud))
    title = f"{seq}: {stage} cloud registered to the CT"
    fig = cloud_on_ct_figure(ct_verts, ct_tris, cloud, residuals, title, seed=seed)
    save_png(fig, out)
    log.info("%s: %d points on %d CT triangles", out, len(cloud), len(ct_tris))


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.cloud), Path(smk.input.residuals), Path(smk.params.ct), smk.wildcards.stage,
         smk.wildcards.seq, Path(smk.output[0]), smk.params.seed)
