"""Rule plot_sfm_summary: trajectory, sparse points and sparse supervision of one endoscopy
sequence, plus its row of the SfM summary table (JSON, joined by sfm_summary_table)."""

import json
import logging
from pathlib import Path

from workflow_scripts.report.figure import save_png
from workflow_scripts.report.sfm import read_sfm_inputs, sfm_figure, summary_row
from workflow_scripts.util import write_text_atomic

log = logging.getLogger("plot_sfm_summary")


def main(seq: str, npz: Path, info_json: Path, sfm_summary: Path | None, out_png: Path, out_row: Path,
         seed: int = 0) -> dict:
    arrays, info, sfm = read_sfm_inputs(npz, info_json, sfm_summary)
    row = summary_row(seq, info, sfm)
    save_png(sfm_figure(seq, arrays, row, seed=seed), out_png)
    write_text_atomic(out_row, json.dumps(row, indent=2) + "\n")
    log.info("%s: %s", out_png, row)
    return row


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    inputs = dict(smk.input.items())
    main(smk.wildcards.seq, Path(smk.input.npz), Path(smk.input.info),
         Path(inputs["sfm"]) / "summary.json" if "sfm" in inputs else None,
         Path(smk.output.png), Path(smk.output.row), smk.params.seed)
