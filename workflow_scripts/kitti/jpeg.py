"""Optional stage ``convert_to_jpeg``: KITTI PNG -> JPEG as the references train on
(seed_methods.md §4.4: ImageMagick ``-quality 92 -sampling-factor 2x2,1x1,1x1``, i.e. 4:2:0
chroma subsampling; published numbers assume JPEG input). The raw tree is never modified: the
JPEGs go to a mirror tree ``<out>/<date>/<drive>/image_0{2,3}/data/<frame>.jpg``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2

from workflow_scripts.kitti.split_files import list_frames
from workflow_scripts.util import atomic_dir
from workflow_scripts.util.images import read_image
from workflow_scripts.util.options import option

__all__ = ["JpegOptions", "png_to_jpeg", "convert_drive"]


@dataclass(frozen=True, kw_only=True)
class JpegOptions:
    """Optional PNG -> JPEG conversion (rule convert_to_jpeg) as the references train on: quality 92
    with 4:2:0 chroma subsampling (ImageMagick -sampling-factor 2x2,1x1,1x1); published numbers
    assume JPEG input. The JPEGs go to results/kitti/jpeg/ (the raw tree is never modified) and
    every later stage reads them instead of the PNGs."""

    convert: bool = option(False, "Convert the drives' PNGs to JPEG first.")
    quality: int = option(92, "JPEG quality (1-100).", minimum=1, maximum=100)


def png_to_jpeg(src: Path, dst: Path, quality: int = 92) -> None:
    """Re-encode one image as baseline JPEG with 4:2:0 chroma subsampling."""
    img = read_image(src, fix="re-extract the drive's images")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    if not cv2.imwrite(str(dst), img, params):
        raise OSError(f"could not write {dst}")


def convert_drive(src_drive: Path, dst_drive: Path, quality: int = 92, workers: int = 1) -> int:
    """Convert ``image_02`` and ``image_03`` of one drive (written atomically as the folder
    ``dst_drive``). Returns the number of images."""
    jobs = []
    with atomic_dir(dst_drive) as tmp:
        for cam in (2, 3):
            (tmp / f"image_0{cam}" / "data").mkdir(parents=True)
            for frame in list_frames(src_drive, cam, "png"):
                name = f"{frame:010d}"
                jobs.append((src_drive / f"image_0{cam}" / "data" / f"{name}.png",
                             tmp / f"image_0{cam}" / "data" / f"{name}.jpg"))
        with ThreadPoolExecutor(max(1, workers)) as pool:  # cv2 releases the GIL while coding
            list(pool.map(lambda job: png_to_jpeg(*job, quality=quality), jobs))
    return len(jobs)
