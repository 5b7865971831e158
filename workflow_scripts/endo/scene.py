"""SfMScene: one sequence's reconstruction in the form prepare_sfm_data consumes.

Two producers: a COLMAP model from run_sfm (``scene_from_colmap``) and a folder in the
endoscopy reference's on-disk format (``liu_format.read_liu_folder``).

Poses are ``cam_from_world`` (world -> camera, x_cam = R x_world + t), as COLMAP stores
them. The reference's motion.yaml holds the inverse (camera -> world); liu_format converts
at its boundary, nowhere else.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from workflow_scripts.util import InputDataError
from workflow_scripts.util.images import read_image

__all__ = ["SfMScene", "opencv_K", "read_frame_indexes", "scene_from_colmap"]


@dataclass
class SfMScene:
    """A sparse reconstruction of one sequence.

    Attributes:
        K: (3, 3) OpenCV intrinsics of the full-resolution undistorted frames, pixels.
        frame_indexes: (F,) int, all frames of the clip (the reference's selected_indexes).
        view_indexes: (V,) int, ascending frame indexes of the registered views
            (visible_view_indexes); row v of every per-view array belongs to view_indexes[v].
        cam_from_world: (V, 4, 4) float64 world -> camera poses (SfM units).
        points: (P, 3) float64 sparse points in world coordinates (SfM units).
        visibility: (P, V) uint8, 1 where point p was triangulated from view v.
        mask: (H, W) uint8 field-of-view mask of the undistorted frames (255 = valid).
        frames_dir: folder holding the frames as ``<index:08d>.jpg``.
    """

    K: np.ndarray
    frame_indexes: np.ndarray
    view_indexes: np.ndarray
    cam_from_world: np.ndarray
    points: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray
    frames_dir: Path

    def __post_init__(self) -> None:
        V, P = len(self.view_indexes), len(self.points)
        if self.cam_from_world.shape != (V, 4, 4):
            raise ValueError(f"cam_from_world must be ({V}, 4, 4), got {self.cam_from_world.shape}")
        if self.points.shape != (P, 3) or self.visibility.shape != (P, V):
            raise ValueError(
                f"points {self.points.shape} / visibility {self.visibility.shape} "
                f"do not match {P} points x {V} views"
            )
        if np.any(np.diff(self.view_indexes) <= 0):
            raise ValueError("view_indexes must be strictly ascending")

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the full-resolution frames."""
        return int(self.mask.shape[0]), int(self.mask.shape[1])

    def frame_path(self, index: int) -> Path:
        return self.frames_dir / f"{int(index):08d}.jpg"


def opencv_K(camera: pycolmap.Camera) -> np.ndarray:
    """OpenCV K (3, 3) of a COLMAP PINHOLE / SIMPLE_PINHOLE camera."""
    fx, fy = camera.focal_length_x, camera.focal_length_y
    cx, cy = camera.principal_point_x - 0.5, camera.principal_point_y - 0.5
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def read_frame_indexes(frames_dir: str | Path) -> np.ndarray:
    """Frame indexes listed in an extract_frames manifest (frames.csv), ascending."""
    path = Path(frames_dir) / "frames.csv"
    if not path.is_file():
        raise InputDataError(path, "missing", "run extract_frames for this sequence first")
    with open(path, newline="") as fh:
        return np.array(sorted(int(row["index"]) for row in csv.DictReader(fh)), dtype=np.int64)


def _frame_index(name: str, model_dir: Path) -> int:
    stem = Path(name).stem
    if not stem.isdigit():
        raise InputDataError(
            model_dir,
            f"image name {name!r} is not <frame index>.jpg",
            "reconstruct the frames written by extract_frames",
        )
    return int(stem)


def scene_from_colmap(model_dir: str | Path, frames_dir: str | Path, K: np.ndarray | None = None) -> SfMScene:
    """Read a COLMAP model (binary or text) of frames named ``<index:08d>.jpg``.

    Args:
        model_dir: folder with cameras/images/points3D.
        frames_dir: extract_frames output (frames, mask.png, frames.csv).
        K: OpenCV intrinsics; default: the model's (single) PINHOLE camera, shifted from
            COLMAP's pixel convention.
    """
    model_dir, frames_dir = Path(model_dir), Path(frames_dir)
    if not model_dir.is_dir():
        raise InputDataError(model_dir, "COLMAP model folder not found", "run run_sfm for this sequence")
    rec = pycolmap.Reconstruction(str(model_dir))
    images = sorted(
        ((_frame_index(im.name, model_dir), im) for im in rec.images.values() if im.has_pose),
        key=lambda x: x[0],
    )
    if not images:
        raise InputDataError(model_dir, "model has no registered image", "re-run run_sfm")
    if K is None:
        K = opencv_K(rec.cameras[images[0][1].camera_id])
    view_indexes = np.array([i for i, _ in images], dtype=np.int64)
    cam_from_world = np.stack([im.cam_from_world().matrix() for _, im in images])
    cam_from_world = np.concatenate(
        [cam_from_world, np.tile([[[0, 0, 0, 1.0]]], (len(images), 1, 1))], axis=1
    )
    column = {im.image_id: v for v, (_, im) in enumerate(images)}
    point_ids = sorted(rec.point3D_ids())
    points = np.array([rec.points3D[p].xyz for p in point_ids], dtype=np.float64).reshape(-1, 3)
    visibility = np.zeros((len(point_ids), len(images)), np.uint8)
    for row, pid in enumerate(point_ids):
        for el in rec.points3D[pid].track.elements:
            if el.image_id in column:
                visibility[row, column[el.image_id]] = 1
    mask = read_image(frames_dir / "mask.png", cv2.IMREAD_GRAYSCALE, fix="re-run extract_frames")
    return SfMScene(
        K=np.asarray(K, np.float64),
        frame_indexes=read_frame_indexes(frames_dir),
        view_indexes=view_indexes,
        cam_from_world=cam_from_world,
        points=points,
        visibility=visibility,
        mask=mask,
        frames_dir=frames_dir,
    )
