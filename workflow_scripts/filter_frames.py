"""Rule filter_frames: SC-Depth frame-index selection for one drive (frame_index.txt)."""


import logging
from pathlib import Path

from workflow_scripts.kitti.frame_filter import FilterOptions, filter_images, write_frame_index
from workflow_scripts.kitti.raw import image_path
from workflow_scripts.kitti.split_files import list_frames
from workflow_scripts.util.options import load_options

log = logging.getLogger("filter_frames")


def main(image_root: Path, folder: str, ext: str, out: Path, options: FilterOptions) -> list[int]:
    """Kept 0-based indices into the drive's sorted left-camera frames."""
    drive = image_root / folder
    paths = [image_path(drive, 2, f, ext) for f in list_frames(drive, 2, ext)]
    kept = filter_images(paths, options)
    write_frame_index(out, kept)
    log.info("%s: kept %d of %d frames (%s)", folder, len(kept), len(paths), options)
    return kept


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    w = smk.wildcards
    main(Path(smk.params.image_root), f"{w.date}/{w.drive}", smk.params.ext, Path(smk.output[0]),
         load_options(FilterOptions, smk.params.filter, "kitti.filter"))
