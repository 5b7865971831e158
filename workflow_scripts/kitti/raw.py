"""KITTI raw drive layout: paths, Velodyne ``.bin`` scans and ``timestamps.txt``.

Layout of one drive (``<root>/<date>/<date>_drive_<id>_sync/``)::

    image_02/data/<frame:010d>.png   left colour camera (rectified), + timestamps.txt
    image_03/data/<frame:010d>.png   right colour camera (rectified), + timestamps.txt
    velodyne_points/data/<frame:010d>.bin   float32 (N, 4): x fwd, y left, z up (m), reflectance
    velodyne_points/timestamps{,_start,_end}.txt
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from workflow_scripts.util import InputDataError, atomic_file, write_text_atomic

SIDE_TO_CAM = {"l": 2, "r": 3}


def frame_name(index: int) -> str:
    """KITTI frame stem: 10 zero-padded digits."""
    return f"{index:010d}"


def drive_dir(root: str | Path, date: str, drive: str) -> Path:
    """``<root>/<date>/<date>_drive_<drive>_sync`` (``drive`` = 4 digits)."""
    return Path(root) / date / f"{date}_drive_{drive}_sync"


def image_path(drive_path: Path, cam: int, index: int, ext: str = "png") -> Path:
    """Path of a rectified colour frame of camera 2 or 3."""
    return drive_path / f"image_0{cam}" / "data" / f"{frame_name(index)}.{ext}"


def velodyne_path(drive_path: Path, index: int) -> Path:
    return drive_path / "velodyne_points" / "data" / f"{frame_name(index)}.bin"


def read_velodyne(path: str | Path) -> np.ndarray:
    """Read a Velodyne scan as float32 (N, 4): x, y, z in metres (x forward, y left,
    z up) and reflectance."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "Velodyne scan not found",
                             "check kitti.root and that velodyne_points was extracted")
    size = path.stat().st_size  # checked before reading: a partial record must not pass
    if size % 16:
        raise InputDataError(path, f"size {size} bytes is not a multiple of 16 (one point = 4 float32)",
                             "the file is truncated or damaged: re-extract it from the KITTI archive")
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def write_velodyne(path: str | Path, points: np.ndarray) -> None:
    """Write float32 (N, 4) points in KITTI's ``.bin`` layout, atomically."""
    pts = np.ascontiguousarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 4:
        raise ValueError(f"points must be (N, 4), got {pts.shape}")
    with atomic_file(path) as tmp:
        pts.tofile(tmp)


def format_timestamp(t: datetime, nanoseconds: int = 0) -> str:
    """KITTI timestamp line: ``2011-09-26 13:02:25.964389445`` (9 fractional digits)."""
    ns = t.microsecond * 1000 + nanoseconds
    return t.strftime("%Y-%m-%d %H:%M:%S") + f".{ns:09d}"


def write_timestamps(path: str | Path, start: datetime, times_s: np.ndarray) -> None:
    """Write one KITTI timestamp per frame, ``start + times_s[i]`` seconds."""
    lines = []
    for t in np.asarray(times_s, dtype=np.float64):
        whole_us = int(np.floor(t * 1e6))
        ns = int(round((t * 1e6 - whole_us) * 1e3))
        lines.append(format_timestamp(start + timedelta(microseconds=whole_us), min(ns, 999)))
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_timestamps(path: str | Path) -> np.ndarray:
    """Seconds since the first line of a KITTI ``timestamps.txt`` (float64, (N,))."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise InputDataError(path, "no timestamps", "re-extract the drive")
    stamps = []
    for ln in lines:
        day, frac = ln.split(".") if "." in ln else (ln, "0")
        base = datetime.strptime(day, "%Y-%m-%d %H:%M:%S")
        stamps.append(base.timestamp() + float("0." + frac))
    s = np.array(stamps, dtype=np.float64)
    return s - s[0]
