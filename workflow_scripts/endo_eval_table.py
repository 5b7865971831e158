"""Rule endo_eval_table: results/endo_eval.csv, one row per stage x sequence (the sequence's
patient and side of endoscopy.split, registration residuals to its patient's CT in mm, the
registration's confidence (ambiguous, runner_up_ratio: see docs/registration.md), point counts,
depth metrics against SfM, and on the demo the check against the true camera poses). A sequence
whose patient has no CT has empty registration columns."""

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from workflow_scripts.endo.evaluate import EVAL_COLUMNS
from workflow_scripts.util import write_table_atomic

log = logging.getLogger("endo_eval_table")


def _registration_columns(r: dict) -> dict:
    truth, res = r.get("truth", {}), r["residuals"]
    return {
        "points_registered": r["points"], "scale_mm_per_sfm_unit": r["scale_mm_per_sfm_unit"],
        "residual_mean_mm": res["mean_mm"], "residual_median_mm": res["median_mm"],
        "residual_rms_mm": res["rms_mm"], "residual_p95_mm": res["p95_mm"],
        "register_seconds": r["seconds"]["total"], "ambiguous": r.get("ambiguous"),
        "runner_up_ratio": r.get("runner_up_ratio"), "truth_scale_ratio": truth.get("scale_ratio"),
        "truth_rotation_deg": truth.get("rotation_deg"), "truth_camera_rms_mm": truth.get("camera_rms_mm"),
    }


def row(key: dict, clouds: Path, registration: Path | None, depth: Path) -> dict:
    """One row: ``key`` holds stage, sequence, patient, split (the rule's params)."""
    c, d = json.loads(clouds.read_text()), json.loads(depth.read_text())
    out = {k: key[k] for k in ("stage", "sequence", "patient", "split")}
    out.update(frames=len(c["frames"]), points=c["points"], **d)
    if registration is not None:
        out.update(_registration_columns(json.loads(registration.read_text())))
    return out


def main(keys: list[dict], clouds: list[Path], registrations: list[Path], depths: list[Path],
         out: Path) -> pd.DataFrame:
    """The table; ``registrations`` in the order of the keys with ``registered`` true."""
    reg: Iterator[Path] = iter(registrations)
    rows = [row(k, c, next(reg) if k["registered"] else None, d)
            for k, c, d in zip(keys, clouds, depths, strict=True)]
    if next(reg, None) is not None:
        raise ValueError("more registrations than registered rows")
    table = pd.DataFrame(rows, columns=EVAL_COLUMNS)
    write_table_atomic(out, table, log)
    for side in ("train", "test"):
        part = table[table["split"] == side]
        if len(part):
            means = part.groupby("stage", sort=False)["abs_rel"].mean().round(4).to_dict()
            log.info("%s sequences: abs_rel %s", side, means)
    return table


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(list(smk.params.rows), [Path(p) for p in smk.input.clouds],
         [Path(p) for p in smk.input.registrations], [Path(p) for p in smk.input.depths], Path(smk.output[0]))
