"""Rule eval_table_html: an evaluation table (results/<table>.csv) as an HTML page that the
Snakemake report shows inline (workflow_scripts/report/tables.py)."""

import logging
from pathlib import Path

from workflow_scripts.report.metrics import read_table
from workflow_scripts.report.tables import table_html
from workflow_scripts.util import write_text_atomic

log = logging.getLogger("eval_table_html")


def main(table_path: Path, title: str, out: Path, group: str | None = None,
         drop: list[str] | None = None) -> str:
    """Write ``out`` from the CSV ``table_path`` (which needs a stage column); ``group``: the
    column within whose values the best stage is bold; ``drop``: columns left out."""
    table = read_table(table_path, ["stage"])
    page = table_html(table, title, str(table_path), group=group if group in table.columns else None,
                      drop=drop or [])
    write_text_atomic(out, page)
    log.info("%s: %d rows x %d columns of %s", out, len(table), len(table.columns), table_path)
    return page


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    p = smk.params.table
    main(Path(smk.input[0]), p["title"], Path(smk.output[0]), p.get("group"), list(p.get("drop", [])))
