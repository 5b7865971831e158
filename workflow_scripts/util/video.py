"""Colour-mapped previews and video files with OpenCV, shared by both branches' depth-for-new-data
rules (endoscopy: ``predict_endo_video``; driving: ``predict_images``) and the demo video.

Videos are written as MPEG-4 Part 2 (``mp4v``), the codec every OpenCV build can encode, frame
by frame (never the whole clip in memory), to a temporary file renamed onto the target when
complete (:func:`workflow_scripts.util.io.atomic_file`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.util.images import read_image
from workflow_scripts.util.io import atomic_file

__all__ = ["COLORMAPS", "colour_map", "images_to_video", "percentile_range", "write_video"]

# colour map names of the config -> OpenCV's constants
COLORMAPS = {
    "magma": cv2.COLORMAP_MAGMA,
    "inferno": cv2.COLORMAP_INFERNO,
    "plasma": cv2.COLORMAP_PLASMA,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
}


def colour_map(values: np.ndarray, lo: float, hi: float, colormap: int | str,
               valid: np.ndarray | None = None) -> np.ndarray:
    """A value map (H, W) -> a colour image (H, W, 3) uint8 BGR.

    Values are mapped linearly from ``lo..hi`` to 0..255 (clipped outside) and coloured with
    ``colormap`` (an OpenCV ``COLORMAP_*`` constant or a name of :data:`COLORMAPS`); pixels
    outside ``valid`` (H, W) bool are black.
    """
    cmap = COLORMAPS[colormap] if isinstance(colormap, str) else colormap
    span = hi - lo if hi > lo else 1e-6
    u8 = np.clip(np.round((np.asarray(values, np.float64) - lo) / span * 255.0), 0, 255).astype(np.uint8)
    frame = cv2.applyColorMap(u8, cmap)
    if valid is not None:
        frame[~valid] = 0
    return frame


def percentile_range(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """(lo, hi): the ``low`` and ``high`` percentiles of the finite positive ``values`` (any
    shape); (0, 1) when there is none, and hi > lo always (one colour scale for a whole video)."""
    values = np.asarray(values)
    values = values[np.isfinite(values) & (values > 0)]
    lo, hi = np.percentile(values, [low, high]) if values.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write colour frames (H, W, 3) uint8 BGR, all of one size, as an mp4v video at ``fps``
    frames per second, atomically; returns the number of frames.

    Raises:
        ValueError: no frame, or frames of different sizes.
        OSError: OpenCV cannot open the file for writing.
    """
    path, count = Path(path), 0
    with atomic_file(path) as tmp:
        writer, size = None, None
        try:
            for frame in frames:
                h, w = frame.shape[:2]
                if writer is None:
                    size = (w, h)
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
                    if not writer.isOpened():
                        raise OSError(f"cannot open {tmp} for writing (OpenCV mp4v)")
                elif (w, h) != size:
                    raise ValueError(f"{path}: frame {count} is {w}x{h}, the first was {size[0]}x{size[1]}")
                writer.write(np.ascontiguousarray(frame))
                count += 1
        finally:
            if writer is not None:
                writer.release()
        if not count:
            raise ValueError(f"{path}: no frame to write")
    return count


def images_to_video(files: list[Path], path: str | Path, fps: float) -> int:
    """Write image files (read completely, all of one size) as an mp4v video at ``fps``, in the
    given order; returns the number of frames. InputDataError names an unreadable image."""
    if not files:
        raise ValueError(f"{path}: no image to write")
    return write_video(path, (read_image(f, fix="replace or remove the image") for f in files), fps)
