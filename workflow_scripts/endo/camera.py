"""Endoscope camera model: ``camera.yaml`` (pinhole K + OpenCV distortion + aperture).

Conventions are OpenCV's: pixel (0, 0) is the centre of the top-left pixel, distortion is
the radial-tangential model ``[k1, k2, p1, p2, k3]`` applied to normalised coordinates.
Example file::

    image_width: 640
    image_height: 480
    fps: 30.0
    camera_matrix: [[300.0, 0.0, 319.5], [0.0, 300.0, 239.5], [0.0, 0.0, 1.0]]
    dist_coeffs: [-0.28, 0.08, 0.0, 0.0, 0.0]
    aperture: {center: [319.5, 239.5], radius: 232.8}   # optional, distorted pixels
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from workflow_scripts.util import InputDataError, write_text_atomic


@dataclass(frozen=True)
class EndoCamera:
    """Intrinsics of the (distorted) endoscope video.

    Attributes:
        K: (3, 3) pinhole matrix in pixels.
        dist: (5,) OpenCV distortion [k1, k2, p1, p2, k3].
        size: (height, width) in pixels.
        fps: frames per second of the video.
        aperture: (cx, cy, radius) of the circular field of view in distorted pixels, or None.
    """

    K: np.ndarray
    dist: np.ndarray
    size: tuple[int, int]
    fps: float
    aperture: tuple[float, float, float] | None = None

    def to_yaml(self) -> str:
        doc = {
            "image_width": int(self.size[1]),
            "image_height": int(self.size[0]),
            "fps": float(self.fps),
            "camera_matrix": np.asarray(self.K, float).round(9).tolist(),
            "dist_coeffs": np.asarray(self.dist, float).round(12).tolist(),
        }
        if self.aperture is not None:
            cx, cy, r = self.aperture
            doc["aperture"] = {"center": [float(cx), float(cy)], "radius": float(r)}
        header = (
            "# Endoscope camera (OpenCV conventions: pixel (0, 0) = centre of the top-left\n"
            "# pixel; dist_coeffs = [k1, k2, p1, p2, k3]; aperture in distorted pixels)\n"
        )
        return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, self.to_yaml())

    def undistorted_rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Normalised pinhole coordinates (N, 2) of distorted pixels (u, v), i.e. the
        (x, y) with ray direction (x, y, 1); iterative inversion to 1e-12."""
        pts = np.stack([u, v], -1).reshape(-1, 1, 2).astype(np.float64)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)
        out = cv2.undistortPoints(pts, self.K, self.dist, None, None, None, crit)
        return out.reshape(-1, 2)


def load_camera(path: str | Path) -> EndoCamera:
    """Read and check a ``camera.yaml``; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(
            path,
            "camera file not found",
            "write camera.yaml (see workflow_scripts/endo/camera.py) beside the videos",
        )
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputDataError(path, f"is not valid YAML ({err})", "fix the syntax") from err
    if not isinstance(doc, dict):
        raise InputDataError(path, "is not a mapping of keys", "see the example in README")

    def need(key, kind):
        if key not in doc:
            raise InputDataError(path, f"missing key '{key}'", "see the example in README")
        try:
            return kind(doc[key])
        except (TypeError, ValueError) as err:
            raise InputDataError(
                path, f"key '{key}' has a wrong value ({err})", "see the example in README"
            ) from err

    K = need("camera_matrix", lambda x: np.asarray(x, np.float64))
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputDataError(
            path,
            f"camera_matrix must be 3x3 with positive focal lengths, got {K.tolist()}",
            "give K in pixels as [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]",
        )
    dist = need("dist_coeffs", lambda x: np.asarray(x, np.float64).ravel())
    if dist.size not in (4, 5, 8):
        raise InputDataError(
            path,
            f"dist_coeffs has {dist.size} values",
            "give OpenCV [k1, k2, p1, p2(, k3)] (zeros for an undistorted video)",
        )
    size = (need("image_height", int), need("image_width", int))
    aperture = None
    if doc.get("aperture") is not None:
        ap = doc["aperture"]
        try:
            aperture = (float(ap["center"][0]), float(ap["center"][1]), float(ap["radius"]))
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise InputDataError(
                path,
                f"aperture must be {{center: [cx, cy], radius: r}} ({err})",
                "fix or remove the aperture key",
            ) from err
    return EndoCamera(K=K, dist=dist, size=size, fps=need("fps", float), aperture=aperture)
