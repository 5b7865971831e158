"""Frame sources: an endoscope video (decoded with OpenCV) or a folder of frames.

Both yield ``(index, bgr)`` with ``index`` the ORIGINAL frame number (video: 0-based decode
order; folder: the integer file stem, e.g. ``00004584.jpg`` -> 4584, or the sorted position
when no stem is an integer). The selection (range, stride or target fps) is applied
to that numbering, so the frames we write keep the names the reference expects
(``<index:08d>.jpg``, seed_methods §1.1).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.util import InputDataError
from workflow_scripts.util.images import read_image

__all__ = [
    "FrameSelection",
    "IMAGE_SUFFIXES",
    "MASK_NAMES",
    "VIDEO_SUFFIXES",
    "iter_folder_frames",
    "iter_video_frames",
    "list_folder_frames",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_NAMES = ("mask.png", "undistorted_mask.bmp")  # never taken for frames


@dataclass(frozen=True)
class FrameSelection:
    """Which source frames to keep (from ``ExtractOptions``, the ``endoscopy.frames`` section).

    Attributes:
        start: first frame index kept (inclusive).
        end: frame index where the selection stops (exclusive); None = to the last frame.
        stride: keep every stride-th frame from ``start``.
        fps: target frame rate; when set (> 0) it replaces ``stride`` by
            ``max(1, round(source_fps / fps))``.
    """

    start: int = 0
    end: int | None = None
    stride: int = 1
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or self.stride < 1:
            raise ValueError(f"need start >= 0 and stride >= 1, got start={self.start} stride={self.stride}")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"frame range end {self.end} must be greater than start {self.start}")

    def step(self, source_fps: float) -> int:
        """Frame step for a source at ``source_fps`` frames per second."""
        if self.fps:
            return max(1, round(source_fps / self.fps))
        return self.stride

    def wanted(self, index: int, source_fps: float) -> bool:
        if index < self.start or (self.end is not None and index >= self.end):
            return False
        return (index - self.start) % self.step(source_fps) == 0

    def check_range(self, path: Path, first: int, last: int) -> None:
        """Raise if the selection reaches past the source's frames ``first..last`` (inclusive)."""
        if self.start > last or (self.end is not None and self.end > last + 1):
            end = "the end" if self.end is None else self.end
            raise InputDataError(
                path,
                f"frame range [{self.start}, {end}) is past the source's frames {first}..{last}",
                "lower endoscopy.frames.start/end (end is exclusive; -1 = to the end)",
            )


def iter_video_frames(path: str | Path, selection: FrameSelection) -> Iterator[tuple[int, np.ndarray]]:
    """Decode ``path`` and yield the selected ``(index, bgr uint8 (H, W, 3))``.

    Raises:
        InputDataError: the file is missing, cannot be decoded, holds no frame, or the range
            reaches past its last frame (raised before the first frame when the container
            states its frame count, otherwise after decoding).
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "video not found", "check endoscopy.root and the sequence name")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputDataError(
                path,
                "cannot be opened as a video (undecodable or not a video)",
                "re-encode it (e.g. ffmpeg -i in -c:v libx264 out.mp4) or give a frame folder",
            )
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        fps = fps if math.isfinite(fps) and fps > 0 else 30.0
        stated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if stated > 0 and selection.start >= stated:
            selection.check_range(path, 0, stated - 1)
        index = -1
        while True:
            if selection.end is not None and index + 1 >= selection.end:
                break
            if not cap.grab():
                break
            index += 1
            if selection.wanted(index, fps):
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    raise InputDataError(path, f"frame {index} cannot be decoded", "re-encode the video")
                yield index, frame
        if index < 0:
            raise InputDataError(
                path,
                "holds no decodable frame (empty or corrupt video)",
                "check the file (ffprobe) or re-encode it",
            )
        selection.check_range(path, 0, index)
    finally:
        cap.release()


def list_folder_frames(folder: str | Path) -> list[tuple[int, Path]]:
    """Frames of a folder as sorted ``(index, path)``. When some images have integer stems
    (``00004584.jpg``), those are the frames, index = the integer, and other images (e.g. a
    mask preview) are ignored; otherwise every image is a frame, index = position in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputDataError(folder, "frame folder not found", "check endoscopy.root and the sequence name")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in MASK_NAMES and not p.name.startswith(".")
    )
    if not files:
        raise InputDataError(
            folder, "holds no frame images (.jpg/.png/...)", "put the frames of the sequence there"
        )
    numbered = [p for p in files if p.stem.isdigit()]
    frames = sorted((int(p.stem), p) for p in numbered) if numbered else list(enumerate(files))
    indexes = [i for i, _ in frames]
    if len(set(indexes)) != len(indexes):
        raise InputDataError(folder, "two frame files have the same frame number", "keep one file per frame")
    return frames


def iter_folder_frames(
    folder: str | Path, selection: FrameSelection, source_fps: float
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield the selected ``(index, bgr uint8)`` of a frame folder (see ``list_folder_frames``)."""
    folder = Path(folder)
    frames = list_folder_frames(folder)
    selection.check_range(folder, frames[0][0], frames[-1][0])
    for index, path in frames:
        if not selection.wanted(index, source_fps):
            continue
        yield index, read_image(path, fix="replace or remove the file")
