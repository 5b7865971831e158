"""Stage ``precompute_depth_hints``: fused SGM hints for the frames of one drive.

Output (Depth Hints' layout, seed_methods.md §3.1):
``<out>/image_0{2,3}/<frame:010d>.npy`` = float32 (1, H, W) depth at the hint resolution in
the unit of the baseline, 0 = no hint. The reference works at 1024x320 with the normalised
KITTI focal length ``0.58 * W`` and a baseline of 0.1 "stereo units" (x5.4 = metres on KITTI);
``focal``/``baseline`` = None take both from the date's calibration instead (metres).
Images are resized with PIL's Lanczos filter, as the reference (``Image.ANTIALIAS``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from workflow_scripts.kitti.calib import load_rig
from workflow_scripts.kitti.raw import image_path
from workflow_scripts.kitti.sgm_fusion import Sampling, SgbmSweep, fused_depth_hint, make_matchers
from workflow_scripts.util import InputDataError, atomic_dir
from workflow_scripts.util.images import read_image
from workflow_scripts.util.options import option
from workflow_scripts.util.pool import map_in_processes

__all__ = ["HintOptions", "load_rgb", "hint_path", "normalised_focal", "frame_hints", "precompute_drive"]
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class HintOptions:
    """Fused SGM depth hints (rule precompute_depth_hints, one job per shard of a drive): 12 OpenCV
    SGBM settings, per pixel the one whose warp of the other image fits best (Depth Hints).
    Written to results/kitti/depth_hints/<date>/<drive>/image_0{2,3}/<frame>.npy as float32
    (1, H, W) depth, 0 = no hint, for the frames of the train/val lists. Defaults: the reference
    (seed_methods §3)."""

    size: tuple[int, int] = option(
        (320, 1024),
        "Resolution [height, width] of the hints. The reference's "
        "[320, 1024] takes about 1.3 s of SGBM per image and side on one core.",
    )
    focal: float | None = option(
        0.58,
        "Focal length as a fraction of the width: with baseline 0.1 the hints are "
        "in stereo units (x 5.4 = metres on KITTI), consistent with monodepth2's stereo "
        "training; null = from the date's calibration (then metres).",
        exclusiveMinimum=0,
    )
    baseline: float | None = option(
        0.1, "Stereo baseline of the hints; null = from the calibration (metres).", exclusiveMinimum=0
    )
    sampling: Sampling = option(
        Sampling.REFERENCE,
        "Warp sampling: reference = exactly the reference's "
        "grid_sample (coordinates normalised by W-1 but sampled with align_corners=False: "
        "a W/(W-1) stretch and a half-pixel shift); exact = the true coordinates.",
    )
    shard_frames: int = option(
        1000,
        "At most this many frame numbers of a drive per precompute_depth_hints job: shard k covers "
        "frames [k x shard_frames, (k + 1) x shard_frames) and is written on its own, so a failure "
        "repeats one shard; merge_depth_hints links a drive's shards into its folder once all exist. "
        "1000 frames at [320, 1024] are about 45 min of SGBM on 1 core.",
        minimum=1,
    )
    sweep: SgbmSweep = field(default_factory=SgbmSweep)

    def __post_init__(self) -> None:
        need = max(self.sweep.num_disparities) + max(self.sweep.block_sizes) // 2
        if self.size[1] <= need:
            raise ValueError(
                f"kitti.depth_hints.size: width {self.size[1]} must exceed {need} (the largest "
                f"SGBM disparity range plus half its block), e.g. 512 or the reference's 1024"
            )


def load_rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB resized to ``size`` = (H, W) with PIL's Lanczos, as the reference
    (decoded by OpenCV, which is faster than PIL at the same pixels)."""
    bgr = read_image(
        path,
        fix="both images of a stereo pair are needed: check that image_02 and image_03 of "
        "the drive are complete",
    )
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb.shape[:2] == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.LANCZOS))


def hint_path(out_dir: Path, cam: int, frame: int) -> Path:
    return out_dir / f"image_0{cam}" / f"{frame:010d}.npy"


def normalised_focal(focal: float, width: int) -> float:
    """``focal * width`` computed in float32 as the reference builds its K (bit-identical)."""
    return float(np.float32(focal) * np.float32(width))


def _focal_baseline(options: HintOptions, raw_date_dir: Path, image_width: int) -> tuple[float, float]:
    """(fx in pixels at the hint width, baseline)."""
    width = options.size[1]
    if options.focal is not None and options.baseline is not None:
        return normalised_focal(options.focal, width), options.baseline
    rig = load_rig(raw_date_dir)
    fx = (
        normalised_focal(options.focal, width)
        if options.focal is not None
        else rig.P_rect[2][0, 0] * width / image_width
    )
    return fx, options.baseline if options.baseline is not None else rig.baseline()


def frame_hints(
    left: np.ndarray,
    right: np.ndarray,
    fx: float,
    baseline: float,
    options: HintOptions,
    matchers: Sequence[cv2.StereoSGBM],
) -> dict[int, np.ndarray]:
    """Hints of both views of a pair: camera (2, 3) -> (1, H, W) float32."""
    return {
        2: fused_depth_hint(left, right, False, fx, baseline, matchers, options.sampling)[None],
        3: fused_depth_hint(right, left, True, fx, baseline, matchers, options.sampling)[None],
    }


@dataclass
class _DriveJob:
    image_drive: Path
    out_dir: Path
    ext: str
    options: HintOptions
    fx: float
    baseline: float


_JOB: _DriveJob | None = None
_MATCHERS: list = []


def _init_worker(job: _DriveJob) -> None:
    global _JOB, _MATCHERS
    cv2.setNumThreads(1)  # one frame per process keeps the cores busy; no nested threads
    _JOB, _MATCHERS = job, make_matchers(job.options.sweep)


def _run_frame(frame: int) -> int:
    job = _JOB
    left = load_rgb(image_path(job.image_drive, 2, frame, job.ext), job.options.size)
    right = load_rgb(image_path(job.image_drive, 3, frame, job.ext), job.options.size)
    for cam, hint in frame_hints(left, right, job.fx, job.baseline, job.options, _MATCHERS).items():
        np.save(hint_path(job.out_dir, cam, frame), hint)
    return frame


def precompute_drive(
    raw_root: Path,
    image_root: Path,
    folder: str,
    frames: Sequence[int],
    out_dir: Path,
    options: HintOptions,
    ext: str = "png",
    workers: int = 1,
) -> int:
    """Hints of both cameras for ``frames`` of drive ``folder`` (``<date>/<drive>``), written
    atomically as the folder ``out_dir``. Returns the number of frames."""
    image_drive = Path(image_root) / folder
    frames = sorted(set(frames))
    for frame in frames:  # fail before any work if a pair is incomplete
        for cam in (2, 3):
            path = image_path(image_drive, cam, frame, ext)
            if not path.is_file():
                raise InputDataError(
                    path,
                    f"image of frame {frame} not found (hints need both images)",
                    "re-extract the drive, or drop the frame from the split",
                )
    width = 0
    if frames:
        with Image.open(image_path(image_drive, 2, frames[0], ext)) as img:  # reads the header only
            width = img.size[0]
    fx, baseline = _focal_baseline(options, Path(raw_root) / folder.split("/")[0], width)
    with atomic_dir(out_dir) as tmp:
        for cam in (2, 3):
            (tmp / f"image_0{cam}").mkdir()
        job = _DriveJob(image_drive, tmp, ext, options, fx, baseline)
        if workers > 1 and len(frames) > 1:
            # spawn, not fork: a process forked while OpenCV's thread pool runs can deadlock
            done = map_in_processes(
                _run_frame,
                frames,
                workers,
                context="spawn",
                initializer=_init_worker,
                initargs=(job,),
                ordered=False,
            )
            for n, _ in enumerate(done, 1):
                if n % 20 == 0 or n == len(frames):
                    log.info("%s: hints for %d/%d frames", folder, n, len(frames))
        else:
            threads = cv2.getNumThreads()
            try:
                _init_worker(job)
                for frame in frames:
                    _run_frame(frame)
            finally:
                cv2.setNumThreads(threads)
    return len(frames)
