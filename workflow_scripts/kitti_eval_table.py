"""Rule kitti_eval_table: the per-stage CSVs joined into results/kitti_eval.csv."""

import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.util import write_table_atomic

log = logging.getLogger("kitti_eval_table")


def main(stage_csvs: list[Path], out: Path) -> pd.DataFrame:
    table = pd.concat([pd.read_csv(p) for p in stage_csvs], ignore_index=True)
    write_table_atomic(out, table, log)
    return table


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main([Path(p) for p in smk.input], Path(smk.output[0]))
