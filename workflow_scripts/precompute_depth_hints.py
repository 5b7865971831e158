"""Rule precompute_depth_hints: fused SGM depth hints of one shard of a drive's train/val frames."""

import logging
import time
from pathlib import Path

from workflow_scripts.kitti.depth_hints import HintOptions, precompute_drive
from workflow_scripts.kitti.hint_shards import shard_frames_of
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.util.options import load_options

log = logging.getLogger("precompute_depth_hints")


def main(
    split_files: list[Path],
    folder: str,
    raw_root: Path,
    image_root: Path,
    ext: str,
    out: Path,
    options: HintOptions,
    threads: int,
    shard: int = 0,
) -> int:
    """Hints for both cameras of every frame of ``folder`` named in ``split_files`` that falls in
    shard ``shard`` (``options.shard_frames`` frame numbers per shard)."""
    listed = [line.frame for path in split_files for line in read_split(path) if line.folder == folder]
    frames = shard_frames_of(listed, shard, options.shard_frames)
    start = time.perf_counter()
    n = precompute_drive(raw_root, image_root, folder, frames, out, options, ext, workers=threads)
    seconds = time.perf_counter() - start
    log.info(
        "%s shard %d: hints for %d frames x 2 cameras at %s in %.1f s (%.3f s per frame and side, "
        "%d workers)",
        folder,
        shard,
        n,
        options.size,
        seconds,
        seconds / max(2 * n, 1),
        threads,
    )
    return n


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    p, w = smk.params, smk.wildcards
    main(
        [Path(smk.input.train), Path(smk.input.val)],
        f"{w.date}/{w.drive}",
        Path(p.raw_root),
        Path(p.image_root),
        p.ext,
        Path(smk.output[0]),
        load_options(HintOptions, p.hints, "kitti.depth_hints"),
        smk.threads,
        int(w.shard),
    )
