"""Stage run_sfm: COLMAP structure-from-motion (pycolmap) on undistorted endoscope frames.

SIFT features with one shared PINHOLE camera of known intrinsics (the undistorted K, not
refined), the field-of-view mask applied to the features, sequential (or exhaustive)
matching, incremental mapping with the initialisation relaxed for forward motion along a
tube (environment.md: ``init_max_forward_motion = 1`` and ``init_min_tri_angle = 2``), and
the LARGEST of the returned models kept.

Output folder (written atomically)::

    model/{cameras,images,points3D,rigs,frames}.bin   COLMAP binary model (open in the COLMAP GUI
                                                      with the frames folder as image path)
    summary.json                                       counts, errors, timings, options

Pixel convention: COLMAP puts the centre of the top-left pixel at (0.5, 0.5), OpenCV at
(0, 0); the OpenCV K of the frames is shifted by +0.5 on the way in (``colmap_params``) and
back on the way out (``opencv_K``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pycolmap

from workflow_scripts.endo.extract import read_frames_camera
from workflow_scripts.endo.scene import opencv_K, read_frame_indexes
from workflow_scripts.util import InputDataError, atomic_dir
from workflow_scripts.util.options import option

__all__ = [
    "SfMOptions",
    "colmap_params",
    "largest_model",
    "run_sfm",
    "run_sfm_on_frames",
    "summarize",
]
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SfMOptions:
    """run_sfm -> results/endo/<seq>/sfm/: model/*.bin (COLMAP binary; open it in the COLMAP GUI with
    the frames folder as image path) and summary.json. pycolmap on the CPU, seeded by `seed`."""

    max_image_size: int = option(
        640,
        "SIFT runs on frames downscaled to this longer side (keypoints are scaled back; -1 = full size).",
        minimum=-1,
    )
    max_num_features: int = option(4096, "SIFT features kept per frame.", minimum=64)
    first_octave: int = option(
        -1,
        "SIFT's first octave: -1 (COLMAP's default) doubles the image first, for more "
        "small-scale features at about twice the time of 0.",
        minimum=-1,
        maximum=3,
    )
    matcher: Literal["sequential", "exhaustive"] = option(
        "sequential", "sequential (each frame with the next `overlap` frames; video) or exhaustive."
    )
    overlap: int = option(10, "Sequential matching window (frames).", minimum=1)
    min_registered_fraction: float = option(
        0.9,
        "Fail when fewer than this fraction of the frames register (largest model).",
        minimum=0,
        maximum=1,
    )
    init_max_forward_motion: float = option(
        1.0,
        "Mapper initialisation: forward motion along a tube defeats "
        "COLMAP's defaults (0.95, 16); both this and init_min_tri_angle are "
        "needed.",
        exclusiveMinimum=0,
        maximum=1,
    )
    init_min_tri_angle: float = option(
        2.0, "Mapper initialisation: minimum triangulation angle (degrees).", exclusiveMinimum=0
    )
    threads: int = option(
        1,
        "Threads per SfM job. 1 gives bit-identical results from run to run (COLMAP's "
        "multi-threaded matching and bundle adjustment do not), and Snakemake runs sequences in "
        "parallel; more threads finish one long sequence sooner.",
        minimum=1,
    )
    seed: int = field(default=0)


def colmap_params(K: np.ndarray) -> list[float]:
    """PINHOLE parameters (fx, fy, cx, cy) in COLMAP's convention from an OpenCV K."""
    return [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5]


def _pipeline_options(options: SfMOptions) -> pycolmap.IncrementalPipelineOptions:
    opts = pycolmap.IncrementalPipelineOptions()
    opts.ba_refine_focal_length = False  # known intrinsics
    opts.ba_refine_principal_point = False
    opts.ba_refine_extra_params = False
    opts.mapper.abs_pose_refine_focal_length = False
    opts.mapper.abs_pose_refine_extra_params = False
    opts.mapper.init_max_forward_motion = options.init_max_forward_motion
    opts.mapper.init_min_tri_angle = options.init_min_tri_angle
    opts.random_seed = options.seed
    opts.mapper.random_seed = options.seed
    opts.triangulation.random_seed = options.seed
    opts.num_threads = options.threads
    opts.mapper.num_threads = options.threads
    opts.min_model_size = 3
    return opts


def largest_model(models: dict[int, pycolmap.Reconstruction]) -> pycolmap.Reconstruction | None:
    """The model with the most registered images (ties: the most 3-D points)."""
    if not models:
        return None
    return max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))


def summarize(rec: pycolmap.Reconstruction, n_frames: int) -> dict:
    """Registered frames, points, mean reprojection error (px), mean track length."""
    return {
        "frames": n_frames,
        "registered": rec.num_reg_images(),
        "registered_fraction": rec.num_reg_images() / max(n_frames, 1),
        "points3D": rec.num_points3D(),
        "mean_reprojection_error_px": float(rec.compute_mean_reprojection_error()),
        "mean_track_length": float(rec.compute_mean_track_length()),
        "mean_observations_per_image": float(rec.compute_mean_observations_per_reg_image()),
    }


def _match(database: Path, options: SfMOptions) -> None:
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = options.threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = options.seed
    if options.matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = options.overlap
        pairing.quadratic_overlap = False
        pycolmap.match_sequential(
            database,
            matching_options=matching,
            pairing_options=pairing,
            verification_options=verification,
            device=pycolmap.Device.cpu,
        )
    else:
        pycolmap.match_exhaustive(
            database, matching_options=matching, verification_options=verification, device=pycolmap.Device.cpu
        )


def _extract_features(
    database: Path,
    image_dir: Path,
    image_names: list[str],
    K: np.ndarray,
    mask_path: str | Path | None,
    options: SfMOptions,
) -> None:
    """SIFT of every frame into ``database``: one shared PINHOLE camera of the known K, masked."""
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    reader.camera_params = ",".join(f"{v:.10g}" for v in colmap_params(K))
    if mask_path is not None:
        reader.camera_mask_path = str(mask_path)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = options.max_image_size
    extraction.num_threads = options.threads
    extraction.sift.max_num_features = options.max_num_features
    extraction.sift.first_octave = options.first_octave
    pycolmap.extract_features(
        database,
        image_dir,
        image_names=image_names,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )


def _require_registered(rec, models: dict, n: int, image_dir: Path, options: SfMOptions) -> None:
    """Raise when the largest model registered fewer than ``min_registered_fraction`` of ``n`` frames."""
    registered = rec.num_reg_images() if rec is not None else 0
    if registered < options.min_registered_fraction * n:
        raise InputDataError(
            image_dir,
            f"SfM registered {registered} of {n} frames (< {options.min_registered_fraction:.0%}; models: "
            f"{sorted(r.num_reg_images() for r in models.values())})",
            "extract more frames (lower endoscopy.frames.stride), raise endoscopy.sfm.overlap / "
            "max_num_features, or check the mask and camera.yaml",
        )


def run_sfm(
    image_dir: str | Path,
    image_names: list[str],
    K: np.ndarray,
    mask_path: str | Path | None,
    out_dir: str | Path,
    options: SfMOptions | None = None,
) -> dict:
    """Reconstruct ``image_names`` (in ``image_dir``) and write the largest model to ``out_dir``.

    Args:
        image_dir: folder of the undistorted frames.
        image_names: frame file names in temporal order (sequential matching follows it).
        K: (3, 3) OpenCV intrinsics of the frames (pixels), shared by all frames.
        mask_path: uint8 image of the frame size, 0 = no features there; None = no mask.
        out_dir: output folder (model/ + summary.json), written atomically.
    Returns:
        the summary dict (also in summary.json).
    Raises:
        InputDataError: fewer than ``min_registered_fraction`` of the frames registered.
    """
    options = options or SfMOptions()
    image_dir, out_dir = Path(image_dir), Path(out_dir)
    pycolmap.set_random_seed(options.seed)
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(
        prefix=f".{out_dir.name}.work.", dir=out_dir.parent if out_dir.parent.exists() else None
    ) as ws:
        ws = Path(ws)
        database = ws / "database.db"
        t = time.perf_counter()
        _extract_features(database, image_dir, image_names, K, mask_path, options)
        times["extract_s"] = time.perf_counter() - t
        t = time.perf_counter()
        _match(database, options)
        times["match_s"] = time.perf_counter() - t
        t = time.perf_counter()
        (ws / "models").mkdir()
        models = pycolmap.incremental_mapping(database, image_dir, ws / "models", _pipeline_options(options))
        times["map_s"] = time.perf_counter() - t
        rec = largest_model(models)
        n = len(image_names)
        _require_registered(rec, models, n, image_dir, options)
        summary = summarize(rec, n)
        summary.update(
            models=sorted((r.num_reg_images() for r in models.values()), reverse=True),
            times=times,
            options=asdict(options),
            K=opencv_K(rec.cameras[next(iter(rec.cameras))]).tolist(),
            pycolmap=pycolmap.__version__,
        )
        with atomic_dir(out_dir) as tmp:
            (tmp / "model").mkdir()
            rec.write_binary(str(tmp / "model"))
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "SfM: %d/%d frames registered, %d points, reprojection %.3f px, track %.2f; %s",
        summary["registered"],
        n,
        summary["points3D"],
        summary["mean_reprojection_error_px"],
        summary["mean_track_length"],
        {k: round(v, 1) for k, v in times.items()},
    )
    return summary


def run_sfm_on_frames(frames_dir: str | Path, out_dir: str | Path, options: SfMOptions | None = None) -> dict:
    """``run_sfm`` on an extract_frames folder: its frames (frames.csv order), K and mask.png."""
    frames_dir = Path(frames_dir)
    K, _ = read_frames_camera(frames_dir)
    names = [f"{i:08d}.jpg" for i in read_frame_indexes(frames_dir)]
    mask = frames_dir / "mask.png"
    return run_sfm(frames_dir, names, K, mask if mask.is_file() else None, out_dir, options)
