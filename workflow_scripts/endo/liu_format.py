"""The endoscopy reference's on-disk SfM format (Liu et al.; seed_methods §1.3, §2.2-2.3).

One folder per clip::

    <index:08d>.jpg             undistorted frames
    camera_intrinsics_per_view  fx, fy, cx, cy per view, one number a line (first view used);
                                the pre-2020 format f, cx, cy is recognised as well
    motion.yaml                 ROS-like YAML, header + "poses[]" -> "poses[k]" -> position,
                                orientation (x, y, z, w): CAMERA -> WORLD pose of view k
    structure.ply               sparse points (vertex x, y, z; other elements ignored)
    view_indexes_per_point      per point: a line "-1", then its frame indexes
    visible_view_indexes        frame indexes of the registered views, ascending
    selected_indexes            all frame indexes of the clip
    undistorted_mask.bmp        field-of-view mask (255 = valid)

``read_liu_folder`` returns an ``SfMScene`` (poses converted once to cam_from_world);
``write_liu_folder`` writes one (poses converted back), e.g. to feed the reference's code.
The intrinsics are taken as OpenCV pixel coordinates (what the reference's code does).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml
from plyfile import PlyData, PlyElement
from scipy.spatial.transform import Rotation

from workflow_scripts.endo.scene import SfMScene
from workflow_scripts.util import InputDataError, write_text_atomic
from workflow_scripts.util.images import read_image
from workflow_scripts.util.ply import read_ply

__all__ = ["LIU_FILES", "pose_from_yaml_entry", "read_liu_folder", "write_liu_folder"]

LIU_FILES = (
    "camera_intrinsics_per_view",
    "motion.yaml",
    "structure.ply",
    "view_indexes_per_point",
    "visible_view_indexes",
    "selected_indexes",
    "undistorted_mask.bmp",
)
_FIX = "see seed_methods §1.3 for the format (or re-export it from COLMAP)"


def _numbers(path: Path, kind: type) -> list:
    if not path.is_file():
        raise InputDataError(path, "missing", f"the reference format needs {', '.join(LIU_FILES)}")
    try:
        return [kind(line) for line in path.read_text().split() if line.strip()]
    except ValueError as err:
        raise InputDataError(path, f"holds a line that is not a number ({err})", _FIX) from err


def _intrinsics(path: Path, n_views: int) -> np.ndarray:
    vals = _numbers(path, float)
    if len(vals) == 3 * n_views and len(vals) != 4 * n_views:  # pre-2020 format: f, cx, cy
        fx = fy = vals[0]
        cx, cy = vals[1], vals[2]
    elif len(vals) >= 4:
        fx, fy, cx, cy = vals[:4]
    else:
        raise InputDataError(path, f"holds {len(vals)} numbers, need fx, fy, cx, cy", _FIX)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def pose_from_yaml_entry(entry: dict) -> np.ndarray:
    """4x4 camera -> world matrix of one motion.yaml entry {position: {x,y,z},
    orientation: {x,y,z,w}} (the quaternion is normalised)."""
    p, q = entry["position"], entry["orientation"]
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat([float(q["x"]), float(q["y"]), float(q["z"]), float(q["w"])]).as_matrix()
    T[:3, 3] = [float(p["x"]), float(p["y"]), float(p["z"])]
    return T


def _read_motion(path: Path, n_views: int) -> np.ndarray:
    """(n_views, 4, 4) cam_from_world from motion.yaml (which stores camera -> world)."""
    if not path.is_file():
        raise InputDataError(path, "missing", _FIX)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputDataError(path, f"is not valid YAML ({err})", _FIX) from err
    poses = doc.get("poses[]") if isinstance(doc, dict) else None
    if not isinstance(poses, dict):
        raise InputDataError(path, "has no 'poses[]' mapping", _FIX)
    out = np.empty((n_views, 4, 4))
    for k in range(n_views):
        entry = poses.get(f"poses[{k}]")
        try:
            world_from_cam = pose_from_yaml_entry(entry)
        except (TypeError, KeyError, ValueError) as err:
            raise InputDataError(path, f"entry poses[{k}] is missing or malformed ({err!r})", _FIX) from err
        out[k] = np.linalg.inv(world_from_cam)
    if len(poses) != n_views:
        raise InputDataError(
            path,
            f"holds {len(poses)} poses but visible_view_indexes lists {n_views} views",
            "give one pose per registered view",
        )
    return out


def _read_points(path: Path) -> np.ndarray:
    return read_ply(path, fix=_FIX).vertices


def _read_visibility(path: Path, view_indexes: np.ndarray, n_points: int) -> np.ndarray:
    column = {int(f): v for v, f in enumerate(view_indexes)}
    vis = np.zeros((n_points, len(view_indexes)), np.uint8)
    point = -1
    for value in _numbers(path, int):
        if value < 0:
            point += 1
            if point >= n_points:
                raise InputDataError(path, f"lists more than {n_points} points (structure.ply)", _FIX)
        elif point < 0 or value not in column:
            raise InputDataError(path, f"names frame {value}, which is not in visible_view_indexes", _FIX)
        else:
            vis[point, column[value]] = 1
    if point != n_points - 1:
        raise InputDataError(path, f"lists {point + 1} points but structure.ply has {n_points}", _FIX)
    return vis


def read_liu_folder(folder: str | Path) -> SfMScene:
    """Read a clip folder in the reference's format (see module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputDataError(folder, "folder not found", "check endoscopy.root and the sequence name")
    view_indexes = np.array(_numbers(folder / "visible_view_indexes", int), dtype=np.int64)
    if view_indexes.size == 0 or np.any(np.diff(view_indexes) <= 0):
        raise InputDataError(folder / "visible_view_indexes", "must list ascending frame indexes", _FIX)
    frame_indexes = np.array(_numbers(folder / "selected_indexes", int), dtype=np.int64)
    K = _intrinsics(folder / "camera_intrinsics_per_view", len(view_indexes))
    cam_from_world = _read_motion(folder / "motion.yaml", len(view_indexes))
    points = _read_points(folder / "structure.ply")
    visibility = _read_visibility(folder / "view_indexes_per_point", view_indexes, len(points))
    mask = read_image(folder / "undistorted_mask.bmp", cv2.IMREAD_GRAYSCALE, fix=_FIX)
    missing = [int(i) for i in view_indexes if not (folder / f"{int(i):08d}.jpg").is_file()]
    if missing:
        raise InputDataError(
            folder,
            f"frames {missing[:5]}{'...' if len(missing) > 5 else ''} are missing (<index:08d>.jpg)",
            "put the undistorted frames beside the SfM files",
        )
    return SfMScene(
        K=K,
        frame_indexes=frame_indexes,
        view_indexes=view_indexes,
        cam_from_world=cam_from_world,
        points=points,
        visibility=visibility,
        mask=mask,
        frames_dir=folder,
    )


def _motion_yaml(cam_from_world: np.ndarray) -> str:
    poses = {}
    for k, T in enumerate(cam_from_world):
        world_from_cam = np.linalg.inv(T)
        qx, qy, qz, qw = Rotation.from_matrix(world_from_cam[:3, :3]).as_quat()
        x, y, z = world_from_cam[:3, 3]
        poses[f"poses[{k}]"] = {
            "position": {"x": float(x), "y": float(y), "z": float(z)},
            "orientation": {"x": float(qx), "y": float(qy), "z": float(qz), "w": float(qw)},
        }
    doc = {"header": {"seq": 0, "stamp": 0.0, "frame_id": None}, "poses[]": poses}
    return yaml.safe_dump(doc, sort_keys=False)


def write_liu_folder(scene: SfMScene, folder: str | Path, copy_frames: bool = True) -> None:
    """Write ``scene`` in the reference's format (poses as camera -> world) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fx, fy, cx, cy = scene.K[0, 0], scene.K[1, 1], scene.K[0, 2], scene.K[1, 2]
    write_text_atomic(
        folder / "camera_intrinsics_per_view",
        "".join(f"{fx:.9g}\n{fy:.9g}\n{cx:.9g}\n{cy:.9g}\n" for _ in scene.view_indexes),
    )
    write_text_atomic(folder / "motion.yaml", _motion_yaml(scene.cam_from_world))
    vertex = np.empty(len(scene.points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    for d, c in enumerate("xyz"):
        vertex[c] = scene.points[:, d]
    PlyData([PlyElement.describe(vertex, "vertex")], text=True).write(str(folder / "structure.ply"))
    lines = []
    for row in scene.visibility:
        lines.append("-1")
        lines.extend(str(int(scene.view_indexes[v])) for v in np.flatnonzero(row))
    write_text_atomic(folder / "view_indexes_per_point", "\n".join(lines) + "\n")
    write_text_atomic(folder / "visible_view_indexes", "".join(f"{int(i)}\n" for i in scene.view_indexes))
    write_text_atomic(folder / "selected_indexes", "".join(f"{int(i)}\n" for i in scene.frame_indexes))
    cv2.imwrite(str(folder / "undistorted_mask.bmp"), scene.mask)
    if copy_frames and scene.frames_dir.resolve() != folder.resolve():
        for index in scene.view_indexes:
            shutil.copyfile(scene.frame_path(index), folder / f"{int(index):08d}.jpg")
