"""Rule make_test_split: the frames of a test split (eigen, eigen_benchmark or a split file), checked."""


import logging
from pathlib import Path

from workflow_scripts.kitti.split_config import check_split_frames
from workflow_scripts.kitti.split_files import STANDARD_DIR, SplitLine, standard_split, write_split
from workflow_scripts.kitti.splits import check_test_split, demo_test_lines

log = logging.getLogger("make_test_split")


def main(out: Path, split: str, raw_root: Path, image_root: Path, ext: str,
         demo_drives: list[str] | None, demo_stride: int, split_file: Path | None = None) -> list[SplitLine]:
    """``split_file`` given: its lines (every frame with its image and LiDAR scan); else
    ``demo_drives`` given: the demo's held-out drives; else the shipped standard list."""
    if split_file is not None:
        lines = check_split_frames(split_file, raw_root, image_root, ext, scans=True)
        write_split(out, lines)
        log.info("%s (%s): %d test frames on %d drives", split, split_file, len(lines),
                 len({ln.folder for ln in lines}))
        return lines
    if demo_drives is not None:
        lines, list_path = demo_test_lines(image_root, demo_drives, demo_stride, ext), out
    else:
        lines, list_path = standard_split(split, "test"), STANDARD_DIR / split / "test_files.txt"
    check_test_split(lines, split, raw_root, image_root, ext, list_path)
    write_split(out, lines)
    log.info("%s: %d test frames on %d drives", split, len(lines), len({ln.folder for ln in lines}))
    return lines


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    p = smk.params
    main(Path(smk.output[0]), smk.wildcards.split, Path(p.raw_root), Path(p.image_root), p.ext,
         list(p.demo_drives) if p.demo else None, p.demo_stride, Path(p.split_file) if p.split_file else None)
