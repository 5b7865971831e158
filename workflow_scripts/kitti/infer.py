"""Depth for any images or video with a trained driving-branch model (rule predict_images, and
``python -m workflow_scripts.predict_images`` without Snakemake).

Each frame goes through the test split's path (``workflow_scripts/kitti/predict.py``): decoded
completely (:func:`workflow_scripts.util.images.read_image`; a video with OpenCV), resized (area)
to the model's training size and scaled to [0, 1] RGB by the dataset's own functions
(:func:`~workflow_scripts.kitti.dataset.network_image`, ``images_to_tensor``), and predicted by
:func:`models.inference.predict_batches` with the model's min/max depth (optional flip
post-processing). Depth follows the evaluation (``workflow_scripts/kitti/evaluate.py``): the scaled
disparity is resized bilinearly to the image's size and inverted, times the scale:

* ``metres``: a model that learnt its scale from stereo pairs (training baseline
  ``stereo_baseline`` units), scale = 0.54 m / stereo_baseline (5.4, the "stereo" scaling of
  results/kitti_eval.csv: KITTI's baseline; right for a rig like KITTI's);
* ``relative``: scale 1, the network's units (a monocular model's depth is known up to scale).

Output folder (written atomically as a whole, each file atomically inside it)::

    depth/<frame>.npy   (H0, W0) float32 depth at the input's size (metres or relative)
    depth/<frame>.png   uint16 round(depth x 256), KITTI's depth-map convention (depth = png / 256;
                        a step of 1/256; depths >= 65535/256 = 256 are stored as 65535)
    color/<frame>.png   (H0, W0, 3) colour-mapped disparity (near = bright), one scale for the set
    depth.mp4           the colour frames as a video (mp4v; frames of another size resized)
    disps.npy           (N, H, W) float32 scaled disparities at the training size, in input order:
                        monodepth2's --ext_disp_to_eval format
    summary.json        frames, units, scale, PNG scale, colour range, model, timing

``<frame>``: an image's file stem (a folder: png/jpg/jpeg, sorted by name), or a video's frame
number in decoding order, ``%06d``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from models.inference import predict_batches
from models.model_file import load_model, read_model_meta
from models.training.engine import pick_device
from workflow_scripts.endo.video import VIDEO_SUFFIXES, FrameSelection, iter_video_frames
from workflow_scripts.kitti.dataset import images_to_tensor, network_image
from workflow_scripts.kitti.evaluate import NOMINAL_KITTI_BASELINE
from workflow_scripts.util import InputDataError, atomic_dir, atomic_file, save_npy_atomic, write_text_atomic
from workflow_scripts.util.gpu import assign_gpu
from workflow_scripts.util.images import read_image
from workflow_scripts.util.options import option
from workflow_scripts.util.video import colour_map, percentile_range, write_video

__all__ = ["KittiPredictOptions", "PNG_SCALE", "IMAGE_SUFFIXES", "depth_scale", "iter_frames",
           "predict_images"]
log = logging.getLogger(__name__)

PNG_SCALE = 256.0  # uint16 PNG value per depth unit (KITTI's depth maps: depth = png / 256)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGES_FPS = 10.0  # depth.mp4 of an image folder: KITTI's 10 Hz
FIX_SOURCE = "give a video file (.mp4, .avi, ...), a folder of .png/.jpg/.jpeg images or one image"


@dataclass(frozen=True, kw_only=True)
class KittiPredictOptions:
    """Depth for your own images or videos with a trained stage (rule predict_images, docs/beyond_eigen.md):
    results/kitti/predict/<stage>/<name>/ holds depth/<frame>.npy (float32) and .png (uint16, depth x 256),
    color/<frame>.png and depth.mp4 (colour-mapped disparity), disps.npy ((N, H, W) at the training size,
    monodepth2's --ext_disp_to_eval format) and summary.json (units: metres or relative)."""

    inputs: tuple[str, ...] = option(
        (),
        "Videos, folders of images (.png/.jpg/.jpeg, sorted by name) or single images; each is written to "
        "results/kitti/predict/<stage>/<name>/, <name> = its file or folder name without extension (unique).",
        items={"type": "string"},
    )
    stage: Literal["teacher", "student", "finetune"] = option("finetune", "The trained stage to run.")
    stride: int = option(1, "Keep every stride-th frame (or image).", minimum=1)
    max_frames: int = option(0, "At most this many frames per input (0 = all).", minimum=0)
    scaling: Literal["auto", "stereo", "relative"] = option(
        "auto",
        "Depth units: stereo = metres, x 0.54 / kitti.train.common.stereo_baseline (5.4; the stereo "
        "scaling of results/kitti_eval.csv, for a KITTI-like rig); relative = the network's units; auto = "
        "metres when the stage learnt its scale from stereo pairs (a student: its teacher's), else relative.",
    )
    post_process: bool = option(False, "monodepth2's flip post-processing (two passes per frame).")
    colormap: Literal["magma", "inferno", "plasma", "viridis", "turbo", "jet"] = option(
        "magma", "Colour map of color/*.png and depth.mp4 (OpenCV's; of the disparity, as monodepth2)."
    )
    fps: float = option(
        0.0, "Frame rate of depth.mp4; 0 = the video's own / stride (image folders: 10, KITTI's).", minimum=0
    )


def depth_scale(meta: dict, scaling: str, teacher_stereo: bool | None = None) -> tuple[float, str, str]:
    """``(scale, units, why)`` of the depth ``scale / disparity`` of a model with metadata ``meta``.

    Args:
        scaling: "stereo", "relative" or "auto" (see :class:`KittiPredictOptions`).
        teacher_stereo: for "auto" on a student (whose model.pt does not record its teacher's
            training): whether the teacher trained with stereo pairs; None = unknown (relative).
    """
    baseline = float(meta.get("stereo_baseline", 0.1))
    metric = (NOMINAL_KITTI_BASELINE / baseline, "metres")
    if scaling == "stereo":
        return (*metric, f"asked for (stereo scaling: 0.54 m / stereo_baseline {baseline})")
    if scaling == "relative":
        return 1.0, "relative", "asked for (the network's units)"
    if scaling != "auto":
        raise ValueError(f"scaling must be auto, stereo or relative, got {scaling!r}")
    stereo = (meta.get("options") or {}).get("stereo")
    where = f"the {meta.get('stage')} stage's stereo option"
    if stereo is None:
        stereo, where = teacher_stereo, "its teacher's stereo option"
    if stereo:
        return (*metric, f"{where} is true: scale from stereo pairs, x 0.54 m / stereo_baseline {baseline}")
    why = "false" if stereo is not None else "unknown (give scaling stereo if its teacher used stereo pairs)"
    return 1.0, "relative", f"{where} is {why}: monocular training has no scale"


def _video_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    finally:
        cap.release()
    return fps if math.isfinite(fps) and fps > 0 else 30.0


def _folder_images(folder: Path) -> list[Path]:
    """The images of a folder sorted by name; InputDataError when there is none or two share a stem."""
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputDataError(folder, "holds no .png/.jpg/.jpeg image", FIX_SOURCE)
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise InputDataError(folder, f"holds several images named {twice[0]} (e.g. .png and .jpg)",
                             "keep one file per frame: the outputs are named by the stem")
    return files


def iter_frames(source: Path, stride: int = 1,
                max_frames: int = 0) -> tuple[Iterator[tuple[str, np.ndarray]], float]:
    """``(frames, fps)`` of a video file, an image folder or one image: frames yield ``(name,
    bgr (H, W, 3) uint8)`` lazily (every ``stride``-th, at most ``max_frames``; 0 = all); fps =
    the video's frame rate / stride (images: 10 Hz, KITTI's, / stride).

    Raises:
        InputDataError: missing source, not a video, image or folder, an empty folder, an
            unreadable single image; while iterating, an undecodable video or image (naming the file).
    """
    source = Path(source)
    if source.is_dir():
        files = _folder_images(source)[::stride]
        frames = ((p.stem, read_image(p, fix="replace or remove the image")) for p in files)
        fps = IMAGES_FPS
    elif source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:  # one image
        frames, fps = iter([(source.stem, read_image(source, fix="give a readable image"))]), IMAGES_FPS
    elif source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        frames = ((f"{i:06d}", bgr) for i, bgr in iter_video_frames(source, FrameSelection(stride=stride)))
        fps = _video_fps(source)
    elif source.exists():
        raise InputDataError(source, f"is not a folder, an image or a video ({' '.join(VIDEO_SUFFIXES)})",
                             FIX_SOURCE)
    else:
        raise InputDataError(source, "input not found", FIX_SOURCE)
    return itertools.islice(frames, max_frames or None), fps / stride


def _check_model(model: Path) -> dict:
    """The metadata of a driving-branch model.pt; InputDataError for anything else."""
    fix = "give a driving stage's model (results/kitti/train/<stage>/model.pt; train it first)"
    if not model.is_file():
        raise InputDataError(model, "model not found", fix)
    try:
        meta = read_model_meta(model)
    except Exception as err:  # noqa: BLE001 - torch raises several types for a bad file
        raise InputDataError(model, f"cannot be read as a model.pt ({err})", fix) from err
    if meta.get("branch") != "kitti":
        raise InputDataError(model, f"is a model of the {meta.get('branch')!r} branch, not 'kitti'", fix)
    return meta


def _write_depth(out: Path, name: str, depth: np.ndarray) -> int:
    """depth/<name>.npy and the uint16 depth/<name>.png; returns the PNG's saturated pixels."""
    save_npy_atomic(out / "depth" / f"{name}.npy", depth)
    scaled = np.round(depth.astype(np.float64) * PNG_SCALE)
    with atomic_file(out / "depth" / f"{name}.png") as tmp:
        if not cv2.imwrite(str(tmp), np.clip(scaled, 0, 65535).astype(np.uint16)):
            raise OSError(f"cannot write {tmp}")
    return int(np.count_nonzero(scaled > 65535))


def _predict(net: torch.nn.Module, meta: dict, frames: Iterator[tuple[str, np.ndarray]], out: Path,
             scale: float, opts: KittiPredictOptions, device: torch.device, batch_size: int,
             timing: dict) -> tuple[list[str], list[tuple[int, int]], np.ndarray, int]:
    """Disparities (N, H, W) float32 at the training size; depth files written as each batch is
    done. Returns the frame names, their (H0, W0) sizes, the disparities, saturated PNG pixels."""
    hw = (int(meta["height"]), int(meta["width"]))
    names, sizes, disps, batch, saturated = [], [], [], [], 0

    def run() -> None:
        nonlocal saturated
        t0 = time.perf_counter()
        disp = predict_batches(net, [images_to_tensor(batch)], device, min_depth=meta["min_depth"],
                               max_depth=meta["max_depth"], post_process=opts.post_process,
                               kind=meta.get("depth_kind", "disp"))
        t1 = time.perf_counter()
        for d, name, (h, w) in zip(disp, names[-len(batch):], sizes[-len(batch):], strict=True):
            # as evaluate_image: bilinear to the image's size, then depth = scale / disparity
            full = cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
            saturated += _write_depth(out, name, (scale / np.maximum(full, 1e-12)).astype(np.float32))
        disps.append(disp)
        batch.clear()
        timing["network_s"] += t1 - t0
        timing["write_s"] += time.perf_counter() - t1

    t0 = time.perf_counter()
    for name, bgr in frames:
        names.append(name)
        sizes.append(bgr.shape[:2])
        batch.append(network_image(bgr, *hw))
        if len(batch) == batch_size:
            timing["read_s"] += time.perf_counter() - t0
            run()
            t0 = time.perf_counter()
    timing["read_s"] += time.perf_counter() - t0
    if batch:
        run()
    return names, sizes, np.concatenate(disps) if disps else np.zeros((0, *hw), np.float32), saturated


def _colour_frames(disps: np.ndarray, sizes: list[tuple[int, int]], lo: float, hi: float,
                   colormap: str) -> Iterator[np.ndarray]:
    """Colour-mapped disparity of every frame (H0, W0, 3) uint8 BGR at its input's size."""
    for d, (h, w) in zip(disps, sizes, strict=True):
        yield colour_map(cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR), lo, hi, colormap)


def _write_previews(out: Path, names: list[str], sizes: list[tuple[int, int]], disps: np.ndarray,
                    colormap: str, fps: float) -> tuple[int, float, float]:
    """color/<frame>.png and depth.mp4 (frames resized to the first one's size), one colour scale
    for the set: monodepth2's test_simple (minimum .. 95th percentile of the disparity). Returns
    the video's frame count and the scale (lo, hi)."""
    lo, hi = percentile_range(disps, 0, 95)
    for name, frame in zip(names, _colour_frames(disps, sizes, lo, hi, colormap), strict=True):
        with atomic_file(out / "color" / f"{name}.png") as png:
            if not cv2.imwrite(str(png), frame):
                raise OSError(f"cannot write {png}")
    h0, w0 = sizes[0]
    frames = (f if f.shape[:2] == (h0, w0) else cv2.resize(f, (w0, h0), interpolation=cv2.INTER_AREA)
              for f in _colour_frames(disps, sizes, lo, hi, colormap))
    return write_video(out / "depth.mp4", frames, fps), lo, hi


def _kind(source: Path) -> str:
    return "images" if source.is_dir() else "image" if source.suffix.lower() in IMAGE_SUFFIXES else "video"


def _summary(model: Path, meta: dict, source: Path, names: list[str], scaling: tuple[float, str, str],
             saturated: int, disps: np.ndarray, video: dict, opts: KittiPredictOptions) -> dict:
    """The contents of summary.json (without device and timing)."""
    scale, units, why = scaling
    return {
        "source": str(source), "kind": _kind(source), "model": str(model),
        "model_stage": str(meta.get("stage")),
        "training_size_hw": [int(meta["height"]), int(meta["width"])],
        "frames": len(names), "names": names,
        "units": units, "metric": units == "metres", "scale": scale, "scale_reason": why,
        "depth": {"files": "depth/<frame>.npy", "dtype": "float32", "size": "the input's (H0, W0)",
                  "from": "scale / disparity, the disparity resized bilinearly to the input's size "
                          "(as the evaluation)",
                  "range": [float(meta["min_depth"]) * scale, float(meta["max_depth"]) * scale]},
        "png": {"files": "depth/<frame>.png",
                "encoding": "uint16, png = round(depth x png_scale), depth = png / png_scale (KITTI's "
                            "depth maps); 65535 = at least 65535 / png_scale",
                "png_scale": PNG_SCALE, "step": 1.0 / PNG_SCALE, "saturated_pixels": saturated},
        "disps": {"file": "disps.npy", "shape": list(disps.shape),
                  "format": "monodepth2 --ext_disp_to_eval: (N, H, W) float32 scaled disparity at the "
                            "training size, input order"},
        "video": {"file": "depth.mp4", **video, "colormap": opts.colormap, "of": "disparity"},
        "options": {k: v for k, v in asdict(opts).items() if k not in ("inputs", "stage")},
    }


def predict_images(model: Path, source: Path, out_dir: Path, opts: KittiPredictOptions | None = None, *,
                   teacher_stereo: bool | None = None, threads: int = 1, batch_size: int = 8) -> dict:
    """Depth maps, colour previews, a video and monodepth2-format disparities of a video or an image
    folder, with a trained driving-branch model (output layout: the module docstring).

    Args:
        model: a KITTI model.pt (any stage); it runs at its training size.
        source: a video file, a folder of .png/.jpg/.jpeg images or one image.
        out_dir: output folder (replaced atomically).
        opts: frame selection, units, colour map, fps (``inputs`` and ``stage`` are the rule's).
        teacher_stereo: whether a student's teacher trained with stereo pairs (scaling auto).
        threads: torch CPU threads; batch_size: frames per network pass.
    Returns:
        the summary (also summary.json).
    Raises:
        InputDataError: missing or unreadable model, a model of the endoscopy branch, a missing,
            empty or undecodable source or image.
    """
    start = time.perf_counter()
    opts = opts or KittiPredictOptions()
    model, source, out_dir = Path(model), Path(source), Path(out_dir)
    meta = _check_model(model)
    scaling = depth_scale(meta, opts.scaling, teacher_stereo)
    frames, video_fps = iter_frames(source, opts.stride, opts.max_frames)
    fps = opts.fps or video_fps
    torch.set_num_threads(max(1, threads))
    timing = {"read_s": 0.0, "network_s": 0.0, "write_s": 0.0}
    with atomic_dir(out_dir) as tmp, assign_gpu(1):
        device, net = pick_device(), load_model(model)[0]
        names, sizes, disps, saturated = _predict(net, meta, frames, tmp, scaling[0], opts, device,
                                                  batch_size, timing)
        if not names:
            raise InputDataError(source, "no frame selected", "lower the stride or check the source")
        t0 = time.perf_counter()
        save_npy_atomic(tmp / "disps.npy", disps)
        written, lo, hi = _write_previews(tmp, names, sizes, disps, opts.colormap, fps)
        timing["write_s"] += time.perf_counter() - t0
        video = {"frames": written, "fps": fps, "disparity_range": [lo, hi]}
        summary = _summary(model, meta, source, names, scaling, saturated, disps, video, opts)
        summary["device"] = str(device)
        summary["timing_s"] = {**timing, "total_s": time.perf_counter() - start}
        write_text_atomic(tmp / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("%s: %d frames of %s -> %s, %s (x%.3g), %.1f s", model, len(names), source, out_dir,
             scaling[1], scaling[0], summary["timing_s"]["total_s"])
    return summary
