"""Rules kitti_eval_table and sfm_summary_table: per-job rows joined into one CSV table.

Each input is a CSV (its rows, e.g. results/kitti/eval/<stage>.csv, one row per scaling) or a
JSON object (one row, e.g. results/endo/report/sfm/<seq>.json); rows keep the inputs' order and
the columns their first appearance. Written atomically (util.write_table_atomic).
"""

import json
import logging
from pathlib import Path

import pandas as pd

from workflow_scripts.util import InputDataError, write_table_atomic

log = logging.getLogger("join_tables")


def read_rows(path: Path) -> list[dict]:
    """The rows of one input: a CSV table or a JSON object (one row)."""
    if path.suffix == ".csv":
        return pd.read_csv(path).to_dict("records")
    if path.suffix == ".json":
        row = json.loads(path.read_text())
        if not isinstance(row, dict):
            raise InputDataError(
                path, "holds no JSON object (one table row)", "re-run the rule that wrote it"
            )
        return [row]
    raise InputDataError(path, "is neither .csv nor .json", "join only table rows")


def join_tables(inputs: list[Path], out: Path) -> pd.DataFrame:
    """The rows of ``inputs`` as one table, written to ``out`` (CSV, 6 significant digits); a
    column's type comes from all its values (a number missing in one row is NaN)."""
    table = pd.DataFrame([row for p in inputs for row in read_rows(p)])
    write_table_atomic(out, table, log)
    return table


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    join_tables([Path(p) for p in smk.input], Path(smk.output[0]))
