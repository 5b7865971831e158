"""Cluster resources of the heavy CPU jobs, from the size of their work (docs/cluster.md).

Each function returns ``{"mem_mb": ..., "runtime": ...}`` (MB of memory, minutes of wall time)
for one job, as Snakemake's ``resources:`` (the SLURM plugin's ``--mem`` and ``-t``). The
constants are measured (stated at each) with a margin of 2x, and every value doubles with each
``attempt`` (the profile's ``retries: 1``), so a job the scheduler killed for time or memory is
resubmitted with twice as much. The profile's ``default-resources`` apply only to rules that
set none; a user's ``set-resources`` entry still overrides these.
"""

from __future__ import annotations

import math

__all__ = ["hint_shard_resources", "sfm_resources", "register_resources"]

# SGBM of the 12 fused settings per image and side at the reference size [320, 1024], one core
# (HintOptions.size's documentation; 0.52 s wall per frame and side on 2 workers at [160, 512])
HINT_SECONDS_PER_SIDE = 1.3
HINT_REFERENCE_PIXELS = 320 * 1024
# one worker process: the two images, 12 SGBM cost volumes in turn, warps (max_rss 220 MB for 2
# workers at [160, 512] on the demo, about 4x the pixels at the reference size)
HINT_MB_PER_WORKER = 400
# COLMAP (pycolmap): SIFT, sequential matching with overlap 10, incremental mapping; 63 demo
# frames took 47 s and 186 MB; real endoscopy frames are larger and mapping grows faster than
# linearly, hence 6 s and 8 MB per frame
SFM_SECONDS_PER_FRAME = 6.0
SFM_MB_PER_FRAME = 8.0
# open3d similarity ICP with restarts: 41 s and 310 MB for a 1 MB cloud and a 1 MB CT on the demo
REGISTER_SECONDS_PER_MB = 60.0
REGISTER_MB_PER_MB = 150.0


def _scaled(mem_mb: float, minutes: float, attempt: int) -> dict[str, int]:
    factor = 2 ** (max(attempt, 1) - 1)
    return {"mem_mb": int(math.ceil(mem_mb * factor)), "runtime": int(math.ceil(minutes * factor))}


def hint_shard_resources(
    frames: int, size: tuple[int, int], workers: int, attempt: int = 1
) -> dict[str, int]:
    """One precompute_depth_hints job: ``frames`` frame numbers (both sides) at ``size``
    [height, width] on ``workers`` processes."""
    pixels = size[0] * size[1] / HINT_REFERENCE_PIXELS
    seconds = 2 * frames * HINT_SECONDS_PER_SIDE * pixels / max(workers, 1)
    return _scaled(1000 + workers * HINT_MB_PER_WORKER * max(pixels, 0.25), 10 + 2 * seconds / 60, attempt)


def sfm_resources(frames: int, attempt: int = 1) -> dict[str, int]:
    """One run_sfm job on ``frames`` video frames."""
    return _scaled(2000 + frames * SFM_MB_PER_FRAME, 15 + 2 * frames * SFM_SECONDS_PER_FRAME / 60, attempt)


def register_resources(input_mb: float, attempt: int = 1) -> dict[str, int]:
    """One register_ct job whose cloud and CT surface files total ``input_mb`` MB."""
    input_mb = max(input_mb, 1.0)
    minutes = 10 + 2 * input_mb * REGISTER_SECONDS_PER_MB / 60
    return _scaled(1500 + input_mb * REGISTER_MB_PER_MB, minutes, attempt)
