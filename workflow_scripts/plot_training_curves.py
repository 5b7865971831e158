"""Rule plot_training_curves: loss curves of a branch's training stages (history.csv)."""

import logging
from pathlib import Path

from workflow_scripts.report.curves import curves_figure, read_history
from workflow_scripts.report.figure import save_png

log = logging.getLogger("plot_training_curves")


def main(histories: list[Path], stages: list[str], branch: str, out: Path, smooth: int) -> None:
    tables = [read_history(p) for p in histories]
    save_png(curves_figure(tables, stages, f"training of the {branch} branch", smooth=smooth), out)
    log.info("%s: %s", out, {s: len(t) for s, t in zip(stages, tables, strict=True)})


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main([Path(p) for p in smk.input], list(smk.params.stages), smk.wildcards.branch, Path(smk.output[0]),
         smk.params.smooth)
