"""Rule convert_to_jpeg (optional): one drive's PNG images as JPEG (quality 92, 4:2:0)."""


import logging
from pathlib import Path

from workflow_scripts.kitti.jpeg import convert_drive

log = logging.getLogger("convert_to_jpeg")


def main(src_drive: Path, out: Path, quality: int, threads: int) -> int:
    n = convert_drive(src_drive, out, quality, workers=threads)
    log.info("%s: %d images -> %s (JPEG quality %d, 4:2:0)", src_drive, n, out, quality)
    return n


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    w = smk.wildcards
    main(Path(smk.params.raw_root) / w.date / w.drive, Path(smk.output[0]), smk.params.quality, smk.threads)
