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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pycolmap

from workflow_scripts.endo.extract import read_frames_camera
from workflow_scripts.endo.scene import read_frame_indexes
from workflow_scripts.util import InputDataError, atomic_dir

__all__ = [
    "SfMOptions",
    "colmap_params",
    "largest_model",
    "opencv_K",
    "run_sfm",
    "run_sfm_on_frames",
    "summarize",
]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SfMOptions:
    """Options of run_sfm (the ``endoscopy.sfm`` config section).

    Attributes:
        max_image_size: SIFT runs on frames downscaled so that the longer side is at most this
            (keypoints are scaled back; -1 = full resolution).
        max_num_features: SIFT features kept per frame.
        first_octave: SIFT's first octave; -1 (COLMAP's default) doubles the image first: more
            small-scale features, about twice the time of 0.
        matcher: "sequential" (each frame with the next ``overlap`` frames) or "exhaustive".
        overlap: sequential matching window (frames).
        min_registered_fraction: fewer registered frames than this fraction is an error.
        init_max_forward_motion, init_min_tri_angle: mapper initialisation (forward motion).
        seed: random seed of COLMAP's RANSAC and mapper.
        num_threads: threads (-1 = all). Only 1 thread gives bit-identical results from run to
            run (COLMAP's multi-threaded matching and bundle adjustment are not reproducible).
    """

    max_image_size: int = 640
    max_num_features: int = 4096
    first_octave: int = -1
    matcher: str = "sequential"
    overlap: int = 10
    min_registered_fraction: float = 0.9
    init_max_forward_motion: float = 1.0
    init_min_tri_angle: float = 2.0
    seed: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        if self.matcher not in ("sequential", "exhaustive"):
            raise ValueError(f"matcher must be 'sequential' or 'exhaustive', got {self.matcher!r}")

    @classmethod
    def from_config(cls, section: dict, seed: int, num_threads: int = 1) -> SfMOptions:
        keys = (
            "max_image_size",
            "max_num_features",
            "first_octave",
            "matcher",
            "overlap",
            "min_registered_fraction",
            "init_max_forward_motion",
            "init_min_tri_angle",
        )
        return cls(**{k: section[k] for k in keys}, seed=seed, num_threads=num_threads)


def colmap_params(K: np.ndarray) -> list[float]:
    """PINHOLE parameters (fx, fy, cx, cy) in COLMAP's convention from an OpenCV K."""
    return [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5]


def opencv_K(camera: pycolmap.Camera) -> np.ndarray:
    """OpenCV K (3, 3) of a COLMAP PINHOLE / SIMPLE_PINHOLE camera."""
    fx, fy = camera.focal_length_x, camera.focal_length_y
    cx, cy = camera.principal_point_x - 0.5, camera.principal_point_y - 0.5
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


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
    opts.num_threads = options.num_threads
    opts.mapper.num_threads = options.num_threads
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
    matching.num_threads = options.num_threads
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
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        reader.camera_params = ",".join(f"{v:.10g}" for v in colmap_params(K))
        if mask_path is not None:
            reader.camera_mask_path = str(mask_path)
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.max_image_size = options.max_image_size
        extraction.num_threads = options.num_threads
        extraction.sift.max_num_features = options.max_num_features
        extraction.sift.first_octave = options.first_octave
        t = time.perf_counter()
        pycolmap.extract_features(
            database,
            image_dir,
            image_names=image_names,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        )
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
        registered = rec.num_reg_images() if rec is not None else 0
        if registered < options.min_registered_fraction * n:
            raise InputDataError(
                image_dir,
                f"SfM registered {registered} of {n} frames "
                f"(< {options.min_registered_fraction:.0%}; models: "
                f"{sorted(r.num_reg_images() for r in models.values())})",
                "extract more frames (lower endoscopy.frames.stride), raise "
                "endoscopy.sfm.overlap / max_num_features, or check the mask and camera.yaml",
            )
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
