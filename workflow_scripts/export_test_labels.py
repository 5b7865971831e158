"""Rule export_test_labels: the test frames' trainIds (workflow_scripts/kitti/semantic_eval.py)."""

import logging
from pathlib import Path

from workflow_scripts.kitti.semantic_eval import export_test_labels

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    n = export_test_labels(Path(smk.input.split), Path(smk.params.labels), Path(smk.output[0]))
    logging.getLogger("export_test_labels").info("%s: labels of %d test frames", smk.output[0], n)
