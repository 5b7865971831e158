"""Undistortion of endoscope frames and the field-of-view mask of the undistorted image.

The undistorted image has the size of the source frame and the pinhole intrinsics
``K_new = K`` with the focal lengths multiplied by ``focal_scale`` (principal point kept);
``focal_scale < 1`` zooms out so that more of the stretched periphery fits the frame.
Pixel convention is OpenCV's (centre of the top-left pixel at (0, 0)).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from workflow_scripts.endo.camera import EndoCamera

__all__ = ["Undistorter", "make_undistorter", "max_monotonic_radius"]


@dataclass(frozen=True)
class Undistorter:
    """Remap tables from the undistorted image to the source frame, and its valid mask.

    Attributes:
        K: (3, 3) pinhole intrinsics of the undistorted image, pixels.
        size: (height, width) of source and undistorted image.
        map_x, map_y: (H, W) float32 source pixel sampled by each undistorted pixel.
        mask: (H, W) uint8, 255 where the undistorted pixel shows the endoscope's field of view
            (inside the source image, the aperture and the optional source mask; eroded), else 0.
    """

    K: np.ndarray
    size: tuple[int, int]
    map_x: np.ndarray
    map_y: np.ndarray
    mask: np.ndarray

    def undistort(self, image: np.ndarray) -> np.ndarray:
        """Undistort a source frame (H, W[, C]) uint8; pixels outside the source become 0."""
        if image.shape[:2] != self.size:
            raise ValueError(
                f"frame is {image.shape[1]}x{image.shape[0]}, camera.yaml says {self.size[1]}x{self.size[0]}"
            )
        return cv2.remap(
            image, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )


def max_monotonic_radius(dist: np.ndarray, r_max: float = 10.0) -> float:
    """Largest undistorted normalised radius up to which the radial model
    r_d = r (1 + k1 r^2 + k2 r^4 + k3 r^6) is increasing (beyond it the image folds over).

    Args:
        dist: OpenCV coefficients [k1, k2, p1, p2(, k3, ...)]; tangential terms are ignored.
        r_max: search limit (normalised units).
    """
    d = np.zeros(5)
    d[: min(5, dist.size)] = np.asarray(dist, float).ravel()[:5]
    k1, k2, k3 = d[0], d[1], d[4]
    r = np.linspace(0.0, r_max, 100_001)
    r2 = r * r
    slope = 1 + 3 * k1 * r2 + 5 * k2 * r2**2 + 7 * k3 * r2**3
    bad = np.flatnonzero(slope <= 0)
    return float(r[bad[0]]) if bad.size else float(r_max)


def make_undistorter(
    camera: EndoCamera, focal_scale: float = 1.0, erode_px: int = 3, source_mask: np.ndarray | None = None
) -> Undistorter:
    """Build the undistortion maps and the field-of-view mask for ``camera``.

    Valid pixels: the undistorted ray lies where the distortion model is one-to-one, lands
    inside the source frame, inside the aperture circle (``camera.aperture``, distorted
    pixels) when given, and inside ``source_mask`` (H, W, nonzero = valid, source geometry)
    when given. The mask is then eroded by a disc of radius ``erode_px`` pixels.
    """
    if focal_scale <= 0:
        raise ValueError(f"focal_scale must be > 0, got {focal_scale}")
    h, w = camera.size
    K_new = np.array(camera.K, dtype=np.float64).copy()
    K_new[0, 0] *= focal_scale
    K_new[1, 1] *= focal_scale
    map_x, map_y = cv2.initUndistortRectifyMap(camera.K, camera.dist, None, K_new, (w, h), cv2.CV_32FC1)
    # Clean the maps: OpenCV's remap never returns on inf/huge values with some border modes.
    map_x = np.nan_to_num(map_x, nan=-1e4, posinf=1e4, neginf=-1e4).clip(-1e4, 1e4).astype(np.float32)
    map_y = np.nan_to_num(map_y, nan=-1e4, posinf=1e4, neginf=-1e4).clip(-1e4, 1e4).astype(np.float32)

    src_valid = np.full((h, w), 255, np.uint8)
    if camera.aperture is not None:
        cx, cy, radius = camera.aperture
        yy, xx = np.mgrid[0:h, 0:w]
        src_valid[(xx - cx) ** 2 + (yy - cy) ** 2 > radius**2] = 0
    if source_mask is not None:
        if source_mask.shape[:2] != (h, w):
            raise ValueError(
                f"source mask is {source_mask.shape[1]}x{source_mask.shape[0]}, frames are {w}x{h}"
            )
        src_valid[source_mask.reshape(h, w) == 0] = 0
    # Bilinear remap of the 0/255 mask is 255 only where all four source neighbours are valid.
    valid = (
        cv2.remap(src_valid, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        == 255
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r_u = np.hypot((xx - K_new[0, 2]) / K_new[0, 0], (yy - K_new[1, 2]) / K_new[1, 1])
    valid &= r_u < max_monotonic_radius(camera.dist)
    mask = np.where(valid, 255, 0).astype(np.uint8)
    if erode_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        mask = cv2.erode(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return Undistorter(K=K_new, size=(h, w), map_x=map_x, map_y=map_y, mask=mask)
