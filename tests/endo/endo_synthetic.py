"""A small synthetic SfMScene with exact geometry, for the format and preprocessing tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.scene import SfMScene


def synthetic_scene(
    folder: Path, n_views: int = 6, n_points: int = 200, seed: int = 0, size: tuple[int, int] = (120, 160)
) -> SfMScene:
    """Cameras on a short forward path looking at points 3-6 units ahead; frames written as
    smooth random JPEGs ``<index:08d>.jpg`` into ``folder`` (indexes 100, 102, ...)."""
    rng = np.random.default_rng(seed)
    h, w = size
    K = np.array([[100.0, 0, (w - 1) / 2], [0, 100.0, (h - 1) / 2], [0, 0, 1]])
    cam_from_world = np.tile(np.eye(4), (n_views, 1, 1))
    for v in range(n_views):
        R = Rotation.from_rotvec(rng.normal(0, 0.03, 3)).as_matrix()
        centre = np.array([0.05 * np.sin(v), 0.02 * v, 0.1 * v])
        cam_from_world[v, :3, :3] = R
        cam_from_world[v, :3, 3] = -R @ centre
    depth = rng.uniform(3, 6, n_points)
    xy = rng.uniform(-0.6, 0.6, (n_points, 2))
    points = np.column_stack([xy * depth[:, None], depth])
    visibility = (rng.random((n_points, n_views)) < 0.5).astype(np.uint8)
    visibility[np.arange(n_points), rng.integers(0, n_views, n_points)] = 1
    view_indexes = 100 + 2 * np.arange(n_views)
    folder.mkdir(parents=True, exist_ok=True)
    for i in view_indexes:
        img = cv2.GaussianBlur(rng.integers(60, 200, (h, w, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(folder / f"{int(i):08d}.jpg"), img)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 2, h // 2), int(0.55 * w), 255, -1)
    return SfMScene(
        K=K,
        frame_indexes=np.arange(100, 100 + 2 * n_views),
        view_indexes=view_indexes,
        cam_from_world=cam_from_world,
        points=points,
        visibility=visibility,
        mask=mask,
        frames_dir=folder,
    )
