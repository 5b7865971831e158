"""Depth of a new endoscopy video (or frame folder) with a trained model, without SfM or retraining.

Each frame goes through the same steps as a training frame, by the same functions:

1. decode (``video.iter_video_frames`` / ``iter_folder_frames``), undistort with camera.yaml
   (``undistort.make_undistorter``, the ``endoscopy.frames`` options: focal_scale, mask_erode_px,
   a source mask of a frame folder), write as JPEG at ``jpeg_quality`` (extract_frames writes the
   training frames as JPEG; the lossy round trip is part of what the network saw);
2. ``sfm_data.load_network_image`` (resize 1/downsampling, crop) with the crop that
   ``sfm_data.downsample_and_crop_mask`` derives from the field-of-view mask and the
   ``endoscopy.sfm_data`` options (the crop needs no SfM point), K from ``crop_intrinsics``;
3. resize (area) to the model's training size, RGB in [0, 1], boundary mask
   (``dataset.boundary_mask``), as ``EndoSequence``; the network runs through
   ``models.inference.predict_endo_raw`` (input ``(2 x - 1) * mask``).

The raw depth is resized (bilinear) to the crop size (the network size of sfm_data), as
predict_endo_depth does, and put in units (``units`` in every file and in summary.json):

* ``relative``: each frame / its median inside the mask (median 1): depth up to scale;
* ``scaled``: raw x ``scale`` (a known factor, depth units per network unit);
* ``sfm``: per-frame scale recovery to the sparse depths of an sfm_data.npz of the same video,
  exactly as ``predict.predict_sequence`` (``endo_depth_in_sfm_units``), SfM world units.

Output folder (written atomically as a whole, each file atomically inside it)::

    depth/<index:08d>.npz   depth (H, W) float32, mask (H, W) uint8 (1 valid), K (3, 3) float64
                            of the depth map (pixels, OpenCV convention), units (str), index
    depth/<index:08d>.png   uint16 round(depth x png_factor): the endoscopy reference defines no
                            depth PNG (only a JET preview, seed_methods §7.5), so png_factor =
                            60000 / the frame's 99th percentile in the mask (summary.json)
    depth.mp4               JET-coloured depth (mp4v), one colour scale for the whole video
                            (1st-99th percentile of all masked depths), black outside the mask
    clouds/<index:08d>.ply  masked per-frame point cloud, camera frame (x right, y down, z
                            forward), in the depth units, colours of the network input
    summary.json            frames, units, scale source, model, training size, timing, trained_on
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.inference import endo_depth_in_sfm_units, predict_endo_raw
from models.model_file import load_model, read_model_meta
from models.training.engine import pick_device
from workflow_scripts.endo.camera import EndoCamera, load_camera
from workflow_scripts.endo.dataset import boundary_mask
from workflow_scripts.endo.extract import ExtractOptions, source_mask
from workflow_scripts.endo.pointcloud import backproject
from workflow_scripts.endo.sfm_data import (
    SfMDataOptions,
    crop_intrinsics,
    downsample_and_crop_mask,
    load_network_image,
)
from workflow_scripts.endo.sparse import load_sfm_data, sparse_depth
from workflow_scripts.endo.undistort import Undistorter, make_undistorter
from workflow_scripts.endo.video import VIDEO_SUFFIXES, FrameSelection, iter_folder_frames, iter_video_frames
from workflow_scripts.util import InputDataError, atomic_dir, atomic_file, write_text_atomic
from workflow_scripts.util.gpu import assign_gpu
from workflow_scripts.util.ply import write_ply
from workflow_scripts.util.video import colour_map, percentile_range, write_video

__all__ = ["NetworkPreprocessing", "make_preprocessing", "iter_source_frames", "predict_new_video",
           "PNG_P99"]
log = logging.getLogger(__name__)

PNG_P99 = 60000  # the 99th percentile of a frame's depth in its 16-bit PNG
UNITS = {"relative": "up to scale: each frame divided by its median depth in the mask (median 1)",
         "scaled": "network depth x the given scale (depth units per network unit)",
         "sfm": "SfM world units of the given sfm_data (per-frame scale recovery, as predict_endo_depth)"}


@dataclass(frozen=True)
class NetworkPreprocessing:
    """How a source frame of one camera becomes the input of a trained network.

    Attributes:
        undistorter: undistortion maps and field-of-view mask of the full-size frames.
        downsampling: frames are resized by 1 / downsampling before the crop.
        crop: (start_h, end_h, start_w, end_w) in the downsampled frame.
        mask: (h, w) uint8 cropped, eroded field-of-view mask at the crop size (255 valid).
        K: (3, 3) float64 intrinsics at the crop size (pixels), the depth maps' K.
        train_hw: (H, W) training size of the network.
        jpeg_quality: JPEG quality of extract_frames' frames.
    """

    undistorter: Undistorter
    downsampling: float
    crop: tuple[int, int, int, int]
    mask: np.ndarray
    K: np.ndarray
    train_hw: tuple[int, int]
    jpeg_quality: int = 95

    @property
    def crop_hw(self) -> tuple[int, int]:
        return int(self.mask.shape[0]), int(self.mask.shape[1])

    @property
    def valid(self) -> np.ndarray:
        """(h, w) bool valid pixels of the depth maps (the reference's mask > 0.9 * 255)."""
        return boundary_mask(self.mask, self.crop_hw) > 0

    @property
    def network_mask(self) -> torch.Tensor:
        """(1, H, W) float {0, 1} boundary mask at the training size, as EndoSequence feeds it."""
        return torch.from_numpy(boundary_mask(self.mask, self.train_hw)[None] / 255.0).float()

    def network_color(self, undistorted_jpeg: Path) -> tuple[torch.Tensor, np.ndarray]:
        """A written undistorted frame -> (3, H, W) float RGB in [0, 1] at the training size, and
        the (h, w, 3) uint8 BGR network image at the crop size (the point clouds' colours)."""
        img = bgr = load_network_image(undistorted_jpeg, self.downsampling, self.crop)
        if img.shape[:2] != self.train_hw:
            img = cv2.resize(img, (self.train_hw[1], self.train_hw[0]), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1).float() / 255.0, bgr

    def write_undistorted(self, bgr: np.ndarray, path: Path) -> None:
        """Undistort a source frame (H, W, 3) uint8 and write it as extract_frames does."""
        quality = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        if not cv2.imwrite(str(path), self.undistorter.undistort(bgr), quality):
            raise OSError(f"cannot write {path}")


def make_preprocessing(camera: EndoCamera, train_hw: tuple[int, int], extract: ExtractOptions,
                       sfm_options: SfMDataOptions, source_mask: np.ndarray | None = None,
                       where: Path | None = None) -> NetworkPreprocessing:
    """The preprocessing of extract_frames + prepare_sfm_data + EndoSequence for ``camera``;
    InputDataError naming ``where`` when the mask cannot be cropped with these options."""
    und = make_undistorter(camera, extract.focal_scale, extract.mask_erode_px, source_mask)
    try:
        mask, crop = downsample_and_crop_mask(und.mask, sfm_options.downsampling,
                                              sfm_options.network_downsampling, sfm_options.crop_size or None)
    except ValueError as err:
        raise InputDataError(where or Path("camera.yaml"), f"cannot crop the field-of-view mask ({err})",
                             "check camera.yaml and the endoscopy.sfm_data options") from err
    K = crop_intrinsics(und.K, sfm_options.downsampling, crop)
    return NetworkPreprocessing(und, float(sfm_options.downsampling), crop, mask, K,
                                (int(train_hw[0]), int(train_hw[1])), extract.jpeg_quality)


def iter_source_frames(source: Path, camera: EndoCamera, selection: FrameSelection,
                       max_frames: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(original frame index, bgr (H, W, 3) uint8)`` of a video file or frame folder, at most
    ``max_frames`` (0 = all). Raises InputDataError for a missing/undecodable/empty source or a
    frame whose size differs from camera.yaml."""
    frames = (iter_video_frames(source, selection) if source.is_file()
              else iter_folder_frames(source, selection, camera.fps))
    for index, bgr in itertools.islice(frames, max_frames or None):
        if bgr.shape[:2] != camera.size:
            raise InputDataError(source, f"frame {index} is {bgr.shape[1]}x{bgr.shape[0]} but camera.yaml "
                                 f"says {camera.size[1]}x{camera.size[0]}",
                                 "give the camera.yaml of this video")
        yield index, bgr


def _check_inputs(model: Path, source: Path, camera: Path) -> tuple[dict, EndoCamera]:
    """The model's metadata and the camera; InputDataError for anything unusable."""
    if not Path(model).is_file():
        raise InputDataError(model, "model not found",
                             "train the endoscopy branch first (results/endo/train/<stage>/model.pt)")
    try:
        meta = read_model_meta(model)
    except Exception as err:  # noqa: BLE001 - torch raises several types for a bad file
        raise InputDataError(model, f"cannot be read as a model.pt ({err})",
                             "give a training stage's model.pt") from err
    if meta.get("branch") != "endo":
        raise InputDataError(model, f"is a model of the {meta.get('branch')!r} branch, not 'endo'",
                             "give results/endo/train/<stage>/model.pt")
    cam = load_camera(camera)
    if not (source.is_dir() or (source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES)):
        raise InputDataError(source, "is neither a video file nor a frame folder (or does not exist)",
                             "give a video (.mp4, .avi, ...) or a folder of .jpg/.png frames")
    return meta, cam


def _check_sfm_data(path: Path, sfm: dict, prep: NetworkPreprocessing) -> None:
    """sfm_data must crop and undistort as ``prep`` (its sparse pixels live in that crop)."""
    theirs = (tuple(int(c) for c in sfm["crop"]), float(sfm["downsampling"]))
    K_full, K = np.asarray(sfm["K_full"], np.float64), prep.undistorter.K
    if theirs != (prep.crop, prep.downsampling) or not np.allclose(K_full, K, rtol=1e-6, atol=1e-6):
        raise InputDataError(path, f"was prepared with crop {list(theirs[0])}, downsampling {theirs[1]} and "
                             f"K {np.round(K_full, 3).tolist()}, not {list(prep.crop)}, {prep.downsampling}, "
                             f"{np.round(K, 3).tolist()}",
                             "give the endoscopy.frames / sfm_data options of that sequence, or no sfm_data")


def _raw_depths(net: torch.nn.Module, prep: NetworkPreprocessing, frames: Iterator[tuple[int, np.ndarray]],
                scratch: Path, device: torch.device, batch_size: int,
                timing: dict) -> tuple[list[int], np.ndarray]:
    """Frame indexes and raw network depths (N, h, w) float32 at the crop size (bilinear from the
    training size, >= 1e-6, as predict_endo_depth); the undistorted frames stay in ``scratch``."""
    indexes, raws, pending = [], [], []

    def run() -> None:
        t0 = time.perf_counter()
        raw = predict_endo_raw(net, torch.stack(pending), prep.network_mask, device, batch_size)
        raw = F.interpolate(raw[:, None], size=prep.crop_hw, mode="bilinear", align_corners=False)
        raws.append(raw[:, 0].clamp(min=1e-6).numpy())
        pending.clear()
        timing["network_s"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    for index, bgr in frames:
        prep.write_undistorted(bgr, scratch / f"{index:08d}.jpg")
        pending.append(prep.network_color(scratch / f"{index:08d}.jpg")[0])
        indexes.append(index)
        if len(pending) == batch_size:
            timing["read_s"] += time.perf_counter() - t0
            run()
            t0 = time.perf_counter()
    timing["read_s"] += time.perf_counter() - t0
    if pending:
        run()
    return indexes, np.concatenate(raws) if raws else np.zeros((0, *prep.crop_hw), np.float32)

def _to_units(raw: np.ndarray, valid: np.ndarray, indexes: list[int], scale: float | None,
              sfm: dict | None, sfm_path: str | Path | None) -> tuple[np.ndarray, list[float]]:
    """Raw depths (N, h, w) at the crop size -> depths (N, h, w) float32 in units, 0 outside
    ``valid`` (h, w), and the per-frame factors applied (depth units per network unit)."""
    if sfm is not None:
        view_of = {int(f): v for v, f in enumerate(sfm["view_indexes"])}
        zero = np.zeros(raw.shape[1:], np.float32)
        sparse = [sparse_depth(sfm, view_of[i]) if i in view_of else (zero, zero) for i in indexes]
        try:
            depth, scales = endo_depth_in_sfm_units(
                torch.from_numpy(raw), torch.from_numpy(np.stack([s[0] for s in sparse])),
                torch.from_numpy(np.stack([s[1] for s in sparse])),
                torch.from_numpy(valid.astype(np.uint8)), float(sfm["global_scale"]))
        except ValueError as err:
            raise InputDataError(sfm_path, f"no predicted frame has sparse SfM samples ({err})",
                                 "give the sfm_data of this video, or scale / no scale") from err
        return depth.numpy().astype(np.float32), scales.double().tolist()
    factors = [float(scale) if scale is not None else 1.0 / float(np.median(r[valid])) for r in raw]
    depth = raw.astype(np.float64) * np.asarray(factors)[:, None, None] * valid
    return depth.astype(np.float32), factors


def _write_frame(out: Path, index: int, depth: np.ndarray, prep: NetworkPreprocessing, units: str,
                 colours_bgr: np.ndarray) -> float:
    """depth/<index>.npz, depth/<index>.png, clouds/<index>.ply; returns the PNG factor."""
    valid, name = prep.valid, f"{index:08d}"
    with atomic_file(out / "depth" / f"{name}.npz") as tmp:
        np.savez_compressed(tmp, depth=depth.astype(np.float32), mask=valid.astype(np.uint8),
                            K=prep.K.astype(np.float64), units=np.array(units), index=np.int64(index))
    inside = depth[valid & (depth > 0)]
    p99 = float(np.percentile(inside, 99)) if inside.size else 0.0
    factor = PNG_P99 / p99 if p99 > 0 else 0.0
    png = np.clip(np.round(depth.astype(np.float64) * factor), 0, 65535).astype(np.uint16)
    with atomic_file(out / "depth" / f"{name}.png") as tmp:
        if not cv2.imwrite(str(tmp), png):
            raise OSError(f"cannot write {tmp}")
    points, px = backproject(depth, prep.K, valid)
    write_ply(out / "clouds" / f"{name}.ply", points, colours_bgr[px[:, 1], px[:, 0], ::-1],
              [f"frame {index}", f"camera frame (x right, y down, z forward), depth units {units}"])
    return factor


def _summary(meta: dict, source: Path, camera: Path, model: Path, indexes: list[int], units: str,
             scale: float | None, sfm_data: Path | None, factors: list[float], png_factors: list[float],
             prep: NetworkPreprocessing, extract: ExtractOptions, sfm_options: SfMDataOptions,
             video_fps: float, colour_range: tuple[float, float]) -> dict:
    """The contents of summary.json (without device and timing)."""
    trained_on = [str(s) for s in meta.get("sequences", [])]
    seen = source.stem in trained_on or source.name in trained_on
    if seen:
        log.warning("%s: a sequence named %s was in the model's training data", source, source.stem)
    names = [f"{i:08d}" for i in indexes]
    return {
        "source": str(source), "camera": str(camera), "model": str(model),
        "model_stage": str(meta.get("stage")),
        "training_size_hw": [int(meta["height"]), int(meta["width"])],
        "trained_on": trained_on, "source_name_in_training": seen,
        "frames": len(indexes), "indexes": indexes,
        "units": units, "units_meaning": UNITS[units],
        "scale_source": {"sfm": "sfm_data", "scaled": "given", "relative": "per-frame median"}[units],
        "scale": scale, "sfm_data": None if sfm_data is None else str(sfm_data),
        "frame_factors": dict(zip(names, factors, strict=True)),
        "depth_size_hw": list(prep.crop_hw), "K": prep.K.tolist(), "crop": list(prep.crop),
        "downsampling": prep.downsampling, "network_downsampling": sfm_options.network_downsampling,
        "focal_scale": extract.focal_scale, "mask_erode_px": extract.mask_erode_px,
        "jpeg_quality": extract.jpeg_quality,
        "png": {"encoding": "uint16, png = round(depth x png_factor), depth = png / png_factor",
                "p99_value": PNG_P99, "why": "the endoscopy reference defines no depth PNG unit",
                "png_factor": dict(zip(names, png_factors, strict=True))},
        "video": {"file": "depth.mp4", "fps": video_fps, "colormap": "jet",
                  "depth_range": list(colour_range)},
    }


def predict_new_video(model: Path, source: Path, camera: Path, out_dir: Path, *, stride: int = 1,
                      max_frames: int = 0, scale: float | None = None, sfm_data: Path | None = None,
                      fps: float = 0.0, threads: int = 1, extract: ExtractOptions | None = None,
                      sfm_options: SfMDataOptions | None = None, batch_size: int = 8) -> dict:
    """Depth maps, a depth video and point clouds of a video the model never trained on.

    Args:
        model: an endoscopy model.pt (any stage); its training size is used.
        source: a video file or a folder of frames (named by frame number, as extract_frames reads them).
        camera: the camera.yaml of the video (undistortion, frame size, fps).
        out_dir: output folder (replaced atomically; layout in the module docstring).
        stride, fps: frame selection as endoscopy.frames (fps > 0 keeps about fps frames per
            second and replaces stride); max_frames: at most this many frames (0 = all).
        scale: depth units per network unit ("scaled"); sfm_data: an sfm_data.npz of this video
            ("sfm"); neither: "relative". Not both.
        threads: torch CPU threads.
        extract, sfm_options: the endoscopy.frames and endoscopy.sfm_data options the model's
            training data was prepared with (default: the dataclass defaults, or with ``sfm_data``
            its downsampling and network_downsampling); frame selection fields of ``extract`` are
            replaced by ``stride`` / ``fps``.
        batch_size: frames per network pass.
    Returns:
        the summary (also summary.json).
    Raises:
        InputDataError: missing model / camera.yaml / source, a model of another branch, an
            unreadable or empty video or folder, an sfm_data of another crop.
    """
    if scale is not None and sfm_data is not None:
        raise ValueError("give scale or sfm_data, not both")
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    start = time.perf_counter()
    model, source, out_dir = Path(model), Path(source), Path(out_dir)
    meta, cam = _check_inputs(model, source, Path(camera))
    sfm = load_sfm_data(sfm_data) if sfm_data is not None else None
    extract = extract or ExtractOptions()
    if sfm_options is None:
        sfm_options = SfMDataOptions() if sfm is None else SfMDataOptions(
            downsampling=float(sfm["downsampling"]), network_downsampling=int(sfm["network_downsampling"]))
    prep = make_preprocessing(cam, (meta["height"], meta["width"]), extract, sfm_options,
                              source_mask(source), Path(camera))
    if sfm is not None:
        _check_sfm_data(Path(sfm_data), sfm, prep)
    selection = replace(extract, start=0, end=-1, stride=stride, fps=fps).selection
    torch.set_num_threads(max(1, threads))
    units = "sfm" if sfm is not None else "scaled" if scale is not None else "relative"
    timing = {"read_s": 0.0, "network_s": 0.0, "write_s": 0.0}
    with atomic_dir(out_dir) as tmp, assign_gpu(1):
        scratch, device = tmp / ".frames", pick_device()
        scratch.mkdir()
        frames = iter_source_frames(source, cam, selection, max_frames)
        indexes, raw = _raw_depths(load_model(model)[0], prep, frames, scratch, device, batch_size, timing)
        if not indexes:
            raise InputDataError(source, "no frame selected", "lower stride / fps or check the source")
        t0 = time.perf_counter()
        depths, factors = _to_units(raw, prep.valid, indexes, scale, sfm, sfm_data)
        png_factors = [_write_frame(tmp, i, d, prep, units, prep.network_color(scratch / f"{i:08d}.jpg")[1])
                       for i, d in zip(indexes, depths, strict=True)]
        shutil.rmtree(scratch)
        lo, hi = percentile_range(depths[:, prep.valid], 1, 99)  # one colour scale for the video
        step = selection.step(cam.fps)
        write_video(tmp / "depth.mp4", (colour_map(d, lo, hi, cv2.COLORMAP_JET, prep.valid) for d in depths),
                    cam.fps / step)  # JET, black outside the mask
        timing["write_s"] = time.perf_counter() - t0
        summary = _summary(meta, source, Path(camera), model, indexes, units, scale, sfm_data, factors,
                           png_factors, prep, extract, sfm_options, cam.fps / step, (lo, hi))
        summary["selection"] = {"stride": stride, "fps": fps, "step": step, "max_frames": max_frames}
        summary["device"] = str(device)
        summary["timing_s"] = {**timing, "total_s": time.perf_counter() - start}
        write_text_atomic(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("%s: %d frames of %s -> %s, units %s, %.1f s", model, len(indexes), source, out_dir, units,
             summary["timing_s"]["total_s"])
    return summary
