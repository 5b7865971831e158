"""Rule merge_depth_hints: a drive's hint shards linked into its hint folder
(workflow_scripts/kitti/hint_shards.py)."""

import logging
from pathlib import Path

from workflow_scripts.kitti.hint_shards import merge_shards

log = logging.getLogger("merge_depth_hints")

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    n = merge_shards([Path(p) for p in smk.input], Path(smk.output[0]))
    log.info("%s: %d hint files from %d shard(s)", smk.output[0], n, len(smk.input))
