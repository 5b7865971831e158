"""Stage extract_frames: video or frame folder -> undistorted frames, FOV mask, manifest.

Output folder (written atomically)::

    <index:08d>.jpg   undistorted frames, named by original frame index
    mask.png          uint8 field-of-view mask of the undistorted frames (255 valid, 0 not)
    frames.csv        index, file, time_s (index / fps of the source)
    camera.json       undistorted pinhole K (OpenCV pixel convention), size, source, selection
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.endo.camera import EndoCamera
from workflow_scripts.endo.undistort import make_undistorter
from workflow_scripts.endo.video import (
    MASK_NAMES,
    VIDEO_SUFFIXES,
    FrameSelection,
    iter_folder_frames,
    iter_video_frames,
)
from workflow_scripts.util import InputDataError, atomic_dir
from workflow_scripts.util.images import read_image
from workflow_scripts.util.options import option

__all__ = ["ExtractOptions", "extract_frames", "read_frames_camera", "source_mask"]
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExtractOptions:
    """extract_frames -> results/endo/<seq>/frames/: <index:08d>.jpg (undistorted, named by the
    original frame number), mask.png (field of view), frames.csv, camera.json (undistorted K)."""

    start: int = option(
        0,
        "First source frame kept (a folder's frame numbers are its file names, e.g. 00004584.jpg = 4584).",
        minimum=0,
    )
    end: int = option(
        -1,
        "Frame number where the selection stops (exclusive); -1 = to the last frame. A range "
        "past the last frame is an error.",
        minimum=-1,
    )
    stride: int = option(1, "Keep every stride-th frame from start.", minimum=1)
    fps: float = option(
        0.0,
        "Keep about fps frames per second (stride = round(video fps / fps)), replacing "
        "stride; 0 = use stride.",
        minimum=0,
    )
    focal_scale: float = option(
        1.0,
        "Focal length of the undistorted frames relative to camera.yaml's (1 = same "
        "K; < 1 zooms out to keep more of the periphery that undistortion stretches).",
        exclusiveMinimum=0,
        maximum=4,
    )
    mask_erode_px: int = option(
        3, "Erosion (pixels) of the field-of-view mask: drops the blurred aperture rim.", minimum=0
    )
    jpeg_quality: int = option(95, "JPEG quality of the written frames (1-100).", minimum=1, maximum=100)
    min_frames: int = field(default=2)

    @property
    def selection(self) -> FrameSelection:
        """The frame range and step as the frame readers take them."""
        return FrameSelection(
            start=self.start, end=None if self.end < 0 else self.end, stride=self.stride, fps=self.fps or None
        )


def source_mask(source: Path) -> np.ndarray | None:
    """A mask shipped inside a frame folder (valid region in the source geometry), if any."""
    if not source.is_dir():
        return None
    for name in MASK_NAMES:
        if (source / name).is_file():
            mask = read_image(source / name, cv2.IMREAD_GRAYSCALE, fix="replace or remove it")
            log.info("using the source mask %s", source / name)
            return np.where(mask >= 128, 255, 0).astype(np.uint8)
    return None


def extract_frames(
    source: str | Path, camera: EndoCamera, out_dir: str | Path, options: ExtractOptions | None = None
) -> dict:
    """Decode ``source`` (a video file or a folder of frames), undistort, write ``out_dir``.

    Returns:
        summary dict: frames written, first/last index, step, size, K of the undistorted frames,
        mask fraction.
    Raises:
        InputDataError: unreadable/empty source, a frame range past the end, frames whose size
            differs from camera.yaml, fewer than ``options.min_frames`` frames selected.
    """
    options = options or ExtractOptions()
    source, out_dir = Path(source), Path(out_dir)
    is_video = source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES
    if not is_video and not source.is_dir():
        raise InputDataError(
            source,
            "is neither a video file nor a frame folder",
            f"give <seq>{'/'.join(VIDEO_SUFFIXES[:2])} or a <seq>/ folder of frames",
        )
    und = make_undistorter(camera, options.focal_scale, options.mask_erode_px, source_mask(source))
    frames = (
        iter_video_frames(source, options.selection)
        if is_video
        else iter_folder_frames(source, options.selection, camera.fps)
    )
    rows: list[tuple[int, str, float]] = []
    with atomic_dir(out_dir) as tmp:
        for index, bgr in frames:
            if bgr.shape[:2] != camera.size:
                raise InputDataError(
                    source,
                    f"frame {index} is {bgr.shape[1]}x{bgr.shape[0]} but camera.yaml "
                    f"says {camera.size[1]}x{camera.size[0]}",
                    "fix image_width/image_height in camera.yaml",
                )
            name = f"{index:08d}.jpg"
            if not cv2.imwrite(
                str(tmp / name), und.undistort(bgr), [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality]
            ):
                raise OSError(f"cannot write {tmp / name}")
            rows.append((index, name, index / camera.fps))
        if len(rows) < options.min_frames:
            raise InputDataError(
                source,
                f"the frame selection keeps {len(rows)} frame(s)",
                f"keep at least {options.min_frames}: widen endoscopy.frames start/end or lower stride",
            )
        cv2.imwrite(str(tmp / "mask.png"), und.mask)
        with open(tmp / "frames.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["index", "file", "time_s"])
            writer.writerows((i, n, f"{t:.6f}") for i, n, t in rows)
        summary = {
            "source": str(source),
            "frames": len(rows),
            "first": rows[0][0],
            "last": rows[-1][0],
            "step": options.selection.step(camera.fps),
            "size_hw": list(camera.size),
            "K": und.K.tolist(),
            "pixel_convention": "opencv: centre of the top-left pixel = (0, 0)",
            "mask_fraction": float((und.mask == 255).mean()),
            "fps": camera.fps,
            "selection": asdict(options.selection),
            "focal_scale": options.focal_scale,
        }
        (tmp / "camera.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("extracted %d frames (%d..%d) of %s to %s", len(rows), rows[0][0], rows[-1][0], source, out_dir)
    return summary


def read_frames_camera(frames_dir: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
    """K (3, 3) and (height, width) of the undistorted frames in an extract_frames folder."""
    path = Path(frames_dir) / "camera.json"
    if not path.is_file():
        raise InputDataError(path, "missing", "run extract_frames for this sequence first")
    doc = json.loads(path.read_text())
    return np.asarray(doc["K"], np.float64), (int(doc["size_hw"][0]), int(doc["size_hw"][1]))
