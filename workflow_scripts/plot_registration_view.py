"""Rule plot_registration_view: a registered cloud on the CT surface, three orthographic views,
points coloured by their residual; an ambiguous registration (its JSON) also shows the cloud
under the runner-up pose."""

import json
import logging
from pathlib import Path

import numpy as np

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.registration import cloud_on_ct_figure, read_residuals
from workflow_scripts.util.ply import read_ply

log = logging.getLogger("plot_registration_view")


def runner_up_cloud(cloud: np.ndarray, registration: dict) -> np.ndarray | None:
    """The registered cloud (N, 3) mm moved to the runner-up pose of an AMBIGUOUS
    registration (register_ct's JSON), else None."""
    runner = registration.get("runner_up")
    if not registration.get("ambiguous") or not runner:
        return None
    best, other = np.asarray(registration["ct_from_sfm"]), np.asarray(runner["ct_from_sfm"])
    M = other @ np.linalg.inv(best)
    return cloud @ M[:3, :3].T + M[:3, 3]


def main(
    cloud_path: Path,
    residuals_path: Path,
    ct_path: Path,
    stage: str,
    seq: str,
    out: Path,
    seed: int = 0,
    registration_path: Path | None = None,
) -> None:
    ct = read_ply(ct_path, need_faces=True)
    ct_verts, ct_tris = ct.vertices, ct.faces
    cloud = read_ply(cloud_path).vertices
    residuals = read_residuals(residuals_path, n_points=len(cloud))
    title = f"{seq}: {stage} cloud registered to the CT"
    registration = json.loads(registration_path.read_text()) if registration_path else {}
    runner = runner_up_cloud(cloud, registration)
    label = "runner-up"
    if runner is not None:
        title += f" - AMBIGUOUS (runner-up score ratio {registration['runner_up_ratio']:.2f})"
        label = "runner-up pose (green)"
    fig = cloud_on_ct_figure(
        ct_verts, ct_tris, cloud, residuals, title, seed=seed, runner_up=runner, runner_up_label=label
    )
    save_png(fig, out)
    log.info("%s: %d points on %d CT triangles", out, len(cloud), len(ct_tris))


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
    )
