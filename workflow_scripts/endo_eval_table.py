"""Rule endo_eval_table: results/endo_eval.csv, one row per stage x sequence (registration
residuals to CT in mm, the registration's confidence (ambiguous, runner_up_ratio: see
docs/registration.md), point counts, depth metrics against SfM, and on the demo the check
against the true camera poses)."""

import json
import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.endo.evaluate import EVAL_COLUMNS
from workflow_scripts.util import write_table_atomic

log = logging.getLogger("endo_eval_table")


def row(stage: str, seq: str, clouds: Path, registration: Path, depth: Path) -> dict:
    c, r, d = (json.loads(p.read_text()) for p in (clouds, registration, depth))
    truth = r.get("truth", {})
    res = r["residuals"]
    return {
        "stage": stage, "sequence": seq, "frames": len(c["frames"]), "points": c["points"],
        "points_registered": r["points"], "scale_mm_per_sfm_unit": r["scale_mm_per_sfm_unit"],
        "residual_mean_mm": res["mean_mm"], "residual_median_mm": res["median_mm"],
        "residual_rms_mm": res["rms_mm"], "residual_p95_mm": res["p95_mm"],
        "register_seconds": r["seconds"]["total"], "ambiguous": r.get("ambiguous"),
        "runner_up_ratio": r.get("runner_up_ratio"), **d,
        "truth_scale_ratio": truth.get("scale_ratio"), "truth_rotation_deg": truth.get("rotation_deg"),
        "truth_camera_rms_mm": truth.get("camera_rms_mm"),
    }


def main(keys: list[tuple[str, str]], clouds: list[Path], registrations: list[Path], depths: list[Path],
         out: Path) -> pd.DataFrame:
    rows = [row(k[0], k[1], c, r, d) for k, c, r, d in zip(keys, clouds, registrations, depths, strict=True)]
    table = pd.DataFrame(rows, columns=EVAL_COLUMNS)
    write_table_atomic(out, table, log)
    return table


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main([tuple(k.split("/")) for k in smk.params.rows], [Path(p) for p in smk.input.clouds],
         [Path(p) for p in smk.input.registrations], [Path(p) for p in smk.input.depths], Path(smk.output[0]))
