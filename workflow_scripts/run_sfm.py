"""Rule run_sfm: COLMAP SfM (pycolmap) on the extracted frames (see workflow_scripts/endo/sfm.py)."""

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from workflow_scripts.endo.sfm import SfMOptions, run_sfm_on_frames
from workflow_scripts.util.options import load_options

log = logging.getLogger("run_sfm")


def redirect_stderr(path: str) -> None:
    """Send file descriptor 2 (where pycolmap's C++ logging writes) to ``path``; Python's
    ``sys.stderr`` keeps the original stderr, so that a failed job's one readable line (and
    warnings) still reach Snakemake's output, not only the COLMAP log."""
    sys.stderr.flush()
    original = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = open(original, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


def main(frames_dir: Path, out_dir: Path, options: SfMOptions) -> dict:
    summary = run_sfm_on_frames(frames_dir, out_dir, options)
    log.info(
        "registered %d/%d frames, %d points, times %s",
        summary["registered"],
        summary["frames"],
        summary["points3D"],
        summary["times"],
    )
    return summary


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    redirect_stderr(smk.log.colmap)  # COLMAP's own (glog) output; before setup_logging, so that
    setup_logging(smk.log.main)  # its warnings and failure line reach the original stderr
    main(
        Path(smk.input.frames),
        Path(smk.output[0]),
        # the threads Snakemake granted (endoscopy.sfm.threads, capped by --cores)
        replace(load_options(SfMOptions, smk.params.sfm, "endoscopy.sfm", seed=smk.params.seed),
                threads=smk.threads),
    )
