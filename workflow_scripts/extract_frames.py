"""Rule extract_frames: video or frame folder -> undistorted frames, mask.png, frames.csv
(see workflow_scripts/endo/extract.py)."""

import logging
from pathlib import Path

from workflow_scripts.endo.camera import load_camera
from workflow_scripts.endo.extract import ExtractOptions, extract_frames
from workflow_scripts.util.options import load_options

log = logging.getLogger("extract_frames")


def main(source: Path, camera_yaml: Path, out_dir: Path, options: ExtractOptions) -> dict:
    camera = load_camera(camera_yaml)
    summary = extract_frames(source, camera, out_dir, options)
    log.info(
        "%d frames of %s -> %s (mask valid %.1f %%)",
        summary["frames"],
        source,
        out_dir,
        100 * summary["mask_fraction"],
    )
    return summary


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(
        Path(smk.params.source),
        Path(smk.params.camera),
        Path(smk.output[0]),
        load_options(ExtractOptions, smk.params.frames, "endoscopy.frames"),
    )
