"""KITTI raw calibration files: read, write, and the projection chain.

File format (per date folder): lines ``key: v1 v2 ...``. Numeric lines become float64
arrays; other values (``calib_time``) stay strings. As in the reference reader
(monodepth2 ``kitti_utils.read_calib_file``), a value is numeric when all its characters are
in ``0123456789.e+- ``.

Pixel convention: the projection ``P_rect_0k @ R_rect_00 @ velo_to_cam`` gives pixel
coordinates in the **1-based (MATLAB) convention** of the KITTI devkit: the centre of the
top-left pixel is (1, 1). The reference ground-truth export therefore uses
``round(x) - 1`` as the 0-based array index, and our demo data is rendered in the same
convention. :meth:`KittiRig.K` returns either convention explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.util import InputDataError, write_text_atomic

CAM_TO_CAM = "calib_cam_to_cam.txt"
VELO_TO_CAM = "calib_velo_to_cam.txt"
IMU_TO_VELO = "calib_imu_to_velo.txt"
_NUMERIC = set("0123456789.e+- ")


def read_calib_file(path: str | Path) -> dict[str, np.ndarray | str]:
    """Read a KITTI calibration text file.

    Returns:
        key -> float64 array (1-D, as written) for numeric values, else the raw string.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "calibration file not found",
                             "point kitti.root at a KITTI raw root whose date folders hold "
                             "calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt")
    data: dict[str, np.ndarray | str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise InputDataError(path, f"line {lineno} has no 'key: values' form: {line[:60]!r}",
                                 "restore the original KITTI calibration file")
        key, value = line.split(":", 1)
        value = value.strip()
        if value and set(value) <= _NUMERIC:
            try:
                data[key] = np.array([float(v) for v in value.split()], dtype=np.float64)
            except ValueError:
                data[key] = value
        else:
            data[key] = value
    return data


def format_calib(entries: dict[str, np.ndarray | str | float]) -> str:
    """Format entries in KITTI's style (``%e`` with 6 decimals, space separated)."""
    lines = []
    for key, value in entries.items():
        if isinstance(value, str):
            lines.append(f"{key}: {value}")
        else:
            flat = np.asarray(value, dtype=np.float64).ravel()
            lines.append(f"{key}: " + " ".join(f"{v:.6e}" for v in flat))
    return "\n".join(lines) + "\n"


def write_calib_file(path: str | Path, entries: dict[str, np.ndarray | str | float]) -> None:
    """Write a KITTI calibration file atomically."""
    write_text_atomic(path, format_calib(entries))


def _get(calib: dict, key: str, size: int, path: Path) -> np.ndarray:
    value = calib.get(key)
    if not isinstance(value, np.ndarray) or value.size != size:
        raise InputDataError(path, f"missing or malformed key {key} (expected {size} numbers)",
                             "use the calibration files shipped with the KITTI raw date")
    return value


@dataclass(frozen=True)
class KittiRig:
    """Calibration of one KITTI recording date.

    Attributes:
        P_rect: camera index (0-3) -> (3, 4) rectified projection, 1-based pixels.
        R_rect_00: (3, 3) rectifying rotation of camera 0.
        velo_to_cam: (4, 4) Velodyne -> unrectified camera 0, metres.
        image_size: camera index -> (height, width) from ``S_rect_0k``.
    """

    P_rect: dict[int, np.ndarray]
    R_rect_00: np.ndarray
    velo_to_cam: np.ndarray
    image_size: dict[int, tuple[int, int]]

    def rect_from_velo(self) -> np.ndarray:
        """(4, 4) Velodyne -> rectified camera-0 frame: ``R_rect_00 @ velo_to_cam``."""
        r = np.eye(4)
        r[:3, :3] = self.R_rect_00
        return r @ self.velo_to_cam

    def velo_to_image(self, cam: int = 2) -> np.ndarray:
        """(3, 4) ``P_rect_0{cam} @ R_rect_00 @ velo_to_cam`` (to 1-based pixels), multiplied
        left to right as the reference (``np.dot(np.dot(P_rect, R_cam2rect), velo2cam)``), so
        that it is bit-identical to it."""
        r = np.eye(4)
        r[:3, :3] = self.R_rect_00
        return self.P_rect[cam] @ r @ self.velo_to_cam

    def K(self, cam: int = 2, zero_based: bool = True) -> np.ndarray:
        """(3, 3) intrinsics of rectified camera ``cam``.

        Args:
            zero_based: subtract 1 from cx, cy so that pixel (0, 0) is the centre of the
                top-left pixel (OpenCV / array-index convention); False keeps KITTI's 1-based.
        """
        K = self.P_rect[cam][:, :3].copy()
        if zero_based:
            K[0, 2] -= 1.0
            K[1, 2] -= 1.0
        return K

    def cam_offset(self, cam: int) -> np.ndarray:
        """(3,) translation of rectified camera ``cam`` w.r.t. rectified camera 0 (metres),
        i.e. ``x_cam = x_rect0 + offset``: ``K^-1 @ P_rect[:, 3]``."""
        P = self.P_rect[cam]
        return np.linalg.solve(P[:, :3], P[:, 3])

    def baseline(self, left: int = 2, right: int = 3) -> float:
        """Horizontal distance between two rectified cameras in metres (0.54 on KITTI)."""
        return float(self.cam_offset(left)[0] - self.cam_offset(right)[0])


def load_rig(date_dir: str | Path) -> KittiRig:
    """Read ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt`` of a date folder."""
    date_dir = Path(date_dir)
    c2c_path, v2c_path = date_dir / CAM_TO_CAM, date_dir / VELO_TO_CAM
    c2c, v2c = read_calib_file(c2c_path), read_calib_file(v2c_path)
    P_rect, sizes = {}, {}
    for cam in range(4):
        P_rect[cam] = _get(c2c, f"P_rect_0{cam}", 12, c2c_path).reshape(3, 4)
        w, h = _get(c2c, f"S_rect_0{cam}", 2, c2c_path)
        sizes[cam] = (int(round(h)), int(round(w)))
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = _get(v2c, "R", 9, v2c_path).reshape(3, 3)
    velo_to_cam[:3, 3] = _get(v2c, "T", 3, v2c_path)
    R_rect_00 = _get(c2c, "R_rect_00", 9, c2c_path).reshape(3, 3)
    return KittiRig(P_rect=P_rect, R_rect_00=R_rect_00, velo_to_cam=velo_to_cam, image_size=sizes)
