"""Rule sfm_summary_table: the sequences' SfM summary rows (plot_sfm_summary) as one CSV."""

import json
import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.util import write_table_atomic

log = logging.getLogger("sfm_summary_table")


def main(rows: list[Path], out: Path) -> pd.DataFrame:
    table = pd.DataFrame([json.loads(p.read_text()) for p in rows])
    write_table_atomic(out, table, log)
    return table


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main([Path(p) for p in smk.input], Path(smk.output[0]))
