"""Rule make_splits: train/val lists for the training stages (monodepth2 line format)."""

import logging
from pathlib import Path

from workflow_scripts.kitti.frame_filter import read_frame_index
from workflow_scripts.kitti.split_files import list_frames, read_split, write_split
from workflow_scripts.kitti.splits import (
    SplitOptions,
    SplitSource,
    complete_frames,
    filtered_train_val,
    standard_train_val,
)
from workflow_scripts.util import InputDataError
from workflow_scripts.util.options import load_options

log = logging.getLogger("make_splits")


def _kept_frames(
    index_path: Path, raw_root: Path, image_root: Path, ext: str
) -> tuple[str, list[int], set[int]]:
    """(folder, kept frame numbers, complete frames: both images and the scan) of the drive of a
    frame_index file ``.../frame_index/<date>/<drive>.txt``."""
    folder = f"{index_path.parent.name}/{index_path.stem}"
    frames = list_frames(image_root / folder, 2, ext)
    kept_index = read_frame_index(index_path)
    if kept_index and max(kept_index) >= len(frames):
        raise InputDataError(
            index_path,
            f"index {max(kept_index)} beyond the drive's {len(frames)} frames",
            "re-run rule filter_frames (the drive changed)",
        )
    return (
        folder,
        [frames[i] for i in kept_index],
        complete_frames(raw_root / folder, image_root / folder, ext),
    )


def main(
    train_out: Path,
    val_out: Path,
    source: SplitSource,
    index_files: list[Path],
    test_files: list[Path],
    raw_root: Path,
    image_root: Path,
    ext: str,
    options: SplitOptions,
) -> tuple[list, list]:
    """``source``: the resolved source (``options.source`` may say "auto")."""
    test_lines = [line for path in test_files for line in read_split(path)]
    if source == SplitSource.STANDARD:
        train, val = standard_train_val(
            options.standard, raw_root, image_root, ext, test_lines, options.missing
        )
    else:
        kept, frames = {}, {}
        for path in index_files:
            folder, kept[folder], frames[folder] = _kept_frames(path, raw_root, image_root, ext)
        where = index_files[0].parent.parent if index_files else train_out
        train, val = filtered_train_val(kept, frames, test_lines, options, where)
    write_split(train_out, train)
    write_split(val_out, val)
    log.info(
        "%s splits: %d train / %d val lines on %d drives",
        source,
        len(train),
        len(val),
        len({line.folder for line in train + val}),
    )
    return train, val


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    p = smk.params
    main(
        Path(smk.output.train),
        Path(smk.output.val),
        SplitSource(p.source),
        [Path(f) for f in smk.input.indices],
        [Path(f) for f in smk.input.tests],
        Path(p.raw_root),
        Path(p.image_root),
        p.ext,
        load_options(SplitOptions, p.splits, "kitti.splits", seed=p.seed),
    )
