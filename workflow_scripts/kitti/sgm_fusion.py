"""Fused SGM depth hints (Depth Hints, seed_methods.md §3.2-3.3), in numpy/OpenCV.

For a rectified pair at the hint resolution:

1. 12 OpenCV SGBM matchers (blockSize 1, 2, 3 x numDisparities 64, 96, 128, 160; P1 = 36,
   P2 = 288, preFilterCap 63, uniquenessRatio 10, speckleWindowSize 100, speckleRange 16,
   minDisparity 0, everything else default) give 12 disparity maps; the right image is
   matched by flipping both images horizontally and flipping the result back. OpenCV matches
   blockSize 2 with the 3x3 window of blockSize 3, so only 8 of the 12 settings are computed
   (the other 4 are bit-identical copies).
2. Candidate depth ``fx * baseline / (disp + 1e-7)`` where ``disp > 0``, else 0.
3. Each candidate warps the other image into the base view. With the reference's pure
   horizontal baseline the projection ``K T K^-1`` reduces exactly to a shift by ``fx * b /
   depth`` (= the disparity) to the left (base = left) or right (base = right); depth 0
   projects to infinity and samples the border pixel of row 0.
4. Per pixel, the candidate with the lowest ``0.85 * SSIM + 0.15 * L1`` loss (monodepth2's
   3x3 SSIM with reflection padding, both averaged over RGB) wins; ties go to the first.

Sampling: ``Sampling.REFERENCE`` reproduces the reference's ``grid_sample`` exactly (pixel
coordinates normalised by ``W - 1`` but sampled with ``align_corners=False``, which stretches
the sampling grid by ``W / (W - 1)`` and shifts it by half a pixel, vertically too; border
padding). ``Sampling.EXACT`` samples at the true coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

__all__ = [
    "Sampling",
    "SgbmSweep",
    "make_matchers",
    "sgbm_disparities",
    "effective_setting",
    "disparity_to_depth",
    "fuse_candidates",
    "fused_depth_hint",
]

SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
_SSIM_WEIGHTS = np.array([[-0.85 / 6] * 3 + [0.85 / 2]], np.float32)  # 0.85 * mean_c (1 - r) / 2
_L1_WEIGHTS = np.full((1, 3), 0.15 / 3, np.float32)  # 0.15 * mean_c |x - y|


class Sampling(StrEnum):
    REFERENCE = "reference"
    EXACT = "exact"


@dataclass(frozen=True, kw_only=True)
class SgbmSweep:
    """The matcher grid (defaults: the reference's 12 settings, §3.2)."""

    block_sizes: tuple[int, ...] = (1, 2, 3)
    num_disparities: tuple[int, ...] = (64, 96, 128, 160)


def make_matchers(sweep: SgbmSweep = SgbmSweep()) -> list[cv2.StereoSGBM]:
    """The SGBM matchers in the reference's order (block size outer, disparities inner)."""
    window = 3  # P1, P2 come from a fixed 3x3 window whatever the block size (reference)
    return [
        cv2.StereoSGBM_create(
            minDisparity=0,
            numDisparities=n,
            blockSize=b,
            P1=window * window * 4,
            P2=window * window * 32,
            preFilterCap=63,
            uniquenessRatio=10,
            speckleWindowSize=100,
            speckleRange=16,
        )
        for b in sweep.block_sizes
        for n in sweep.num_disparities
    ]


def sgbm_disparities(
    base: np.ndarray, lookup: np.ndarray, matchers: Sequence[cv2.StereoSGBM], base_is_right: bool
) -> np.ndarray:
    """Disparity of every matcher for the ``base`` view.

    Args:
        base, lookup: (H, W, 3) uint8 RGB rectified images.
        base_is_right: the base is the right image (matched on the flipped pair).
    Returns:
        (K, H, W) float32 disparities in pixels (SGBM's fixed point / 16; <= 0 = invalid).
    """
    if base.shape != lookup.shape or base.dtype != np.uint8 or base.ndim != 3:
        raise ValueError(f"need two (H, W, 3) uint8 images of one size, got {base.shape}, {lookup.shape}")
    if base_is_right:
        base, lookup = np.ascontiguousarray(base[:, ::-1]), np.ascontiguousarray(lookup[:, ::-1])
    out = np.empty((len(matchers),) + base.shape[:2], np.float32)
    done: dict[tuple, int] = {}
    for k, matcher in enumerate(matchers):
        key = effective_setting(matcher)
        if key in done:  # the same computation as an earlier matcher's: copy its result
            out[k] = out[done[key]]
            continue
        done[key] = k
        disp = matcher.compute(base, lookup)
        out[k] = (disp[:, ::-1] if base_is_right else disp) / np.float32(16)
    return out


def effective_setting(matcher: cv2.StereoSGBM) -> tuple:
    """What an SGBM matcher computes with: its parameters, with the block size as OpenCV uses
    it, a window of ``2 * (blockSize // 2) + 1`` pixels. blockSize 2 and 3 therefore compute the
    same disparities (4 of the reference's 12 settings copy others; tests/kitti check this
    against full SGBM runs), and :func:`sgbm_disparities` runs each setting once."""
    m = matcher
    return (
        m.getBlockSize() // 2,
        m.getNumDisparities(),
        m.getMinDisparity(),
        m.getP1(),
        m.getP2(),
        m.getPreFilterCap(),
        m.getUniquenessRatio(),
        m.getSpeckleWindowSize(),
        m.getSpeckleRange(),
        m.getDisp12MaxDiff(),
        m.getMode(),
    )


def disparity_to_depth(disparity: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """``fx * baseline / (disp + 1e-7)`` where ``disp > 0``, else 0, in float32 as the
    reference (depth in the unit of ``baseline``)."""
    fb = np.float32(np.float32(fx) * np.float32(baseline))
    with np.errstate(divide="ignore"):
        depth = fb / (disparity + np.float32(1e-7))
    return np.where(disparity > 0, depth, np.float32(0)).astype(np.float32)


_THIRD = np.full(3, 1 / 3, np.float32)


def _box3(img: np.ndarray) -> np.ndarray:
    """3x3 mean with reflection padding (torch ReflectionPad2d(1) + AvgPool2d(3, 1)); separable,
    which OpenCV runs faster than boxFilter."""
    return cv2.sepFilter2D(img, -1, _THIRD, _THIRD, borderType=cv2.BORDER_REFLECT_101)


def _row_blend(lookup: np.ndarray, sampling: Sampling) -> np.ndarray:
    """The lookup image resampled at the rows the reference samples (row v -> v * H / (H-1) - 0.5
    with ``Sampling.REFERENCE``, clamped to the border), linear between two rows."""
    h = lookup.shape[0]
    if sampling == Sampling.EXACT or h == 1:
        return lookup
    iy = np.clip(np.arange(h) * (h / (h - 1)) - 0.5, 0, h - 1)
    y0 = np.floor(iy).astype(np.intp)
    a = (iy - y0).astype(np.float32)[:, None, None]
    return lookup[y0] * (1 - a) + lookup[np.minimum(y0 + 1, h - 1)] * a


def _distinct(depths: np.ndarray) -> list[np.ndarray]:
    """The candidates that differ from every earlier one, in order. A copy of an earlier
    candidate has the same loss everywhere, so it never wins (ties go to the first): skipping it
    leaves the result unchanged. OpenCV's SGBM uses a (2 * (blockSize // 2) + 1)-pixel window, so
    blockSize 2 and 3 match identically and 4 of the reference's 12 candidates are copies."""
    seen: dict[bytes, list[np.ndarray]] = {}
    out = []
    for depth in depths:
        key = depth.ravel()[:: max(1, depth.size // 1024)].tobytes()  # cheap fingerprint
        if not any(np.array_equal(depth, other) for other in seen.get(key, [])):
            seen.setdefault(key, []).append(depth)
            out.append(depth)
    return out


@dataclass(frozen=True)
class _Warp:
    """Per-image constants of the warp and of the SSIM terms of the base image."""

    rows: np.ndarray  # (H, W, 3) the lookup image at the rows the reference samples
    step: np.ndarray  # (H, W, 3) rows[:, x + 1] - rows[:, x] (border replicated)
    u: np.ndarray  # (1, W) column u * stretch - shift (where a point at infinity samples)
    shift_num: np.float32  # sign * fx * baseline * stretch
    mu_y: np.ndarray  # (H, W, 3) 3x3 mean of the base
    mu_yy_c1: np.ndarray  # mu_y^2 + C1
    var_y_c2: np.ndarray  # sigma_y + C2


def _prepare(
    base: np.ndarray, lookup: np.ndarray, fx: float, baseline: float, base_is_right: bool, sampling: Sampling
) -> _Warp:
    w = base.shape[1]
    rows = _row_blend(lookup, sampling)
    stretch = w / (w - 1) if sampling == Sampling.REFERENCE else 1.0
    shift = 0.5 if sampling == Sampling.REFERENCE else 0.0
    mu_y = _box3(base)
    return _Warp(
        rows=rows,
        step=np.ascontiguousarray(np.concatenate([rows[:, 1:], rows[:, -1:]], axis=1) - rows),
        u=(np.arange(w, dtype=np.float32) * np.float32(stretch) - np.float32(shift))[None, :],
        shift_num=np.float32((1 if base_is_right else -1) * np.float32(fx * baseline) * stretch),
        mu_y=mu_y,
        mu_yy_c1=mu_y * mu_y + np.float32(SSIM_C1),
        var_y_c2=_box3(base * base) - mu_y * mu_y + np.float32(SSIM_C2),
    )


def _fuse_rows(base: np.ndarray, depths: list[np.ndarray], warp: _Warp, r0: int, r1: int) -> np.ndarray:
    """The winning depth of rows [r0, r1) of the base image (the 3x3 SSIM sees a halo row above
    and below inside the image). Returns (r1 - r0, W) float32."""
    h, w, _ = base.shape
    a0, a1 = max(0, r0 - 1), min(h, r1 + 1)
    y = base[a0:a1]
    mu_y, mu_yy_c1, var_y_c2 = (t[a0:a1] for t in (warp.mu_y, warp.mu_yy_c1, warp.var_y_c2))
    map_y = np.broadcast_to(np.arange(a0, a1, dtype=np.float32)[:, None], (a1 - a0, w))
    best_loss = np.full((a1 - a0, w), np.inf, np.float32)
    best = np.zeros((a1 - a0, w), np.float32)
    for depth in (d[a0:a1] for d in depths):
        # sample x = (u + sign * fx * b / depth) * stretch - shift; depth 0 -> +-inf -> the border
        # column after clipping, in row 0: the reference's projection to infinity. The maps are
        # finite before remap (remap may hang on inf maps).
        with np.errstate(divide="ignore"):
            xs = warp.shift_num / depth
        xs += warp.u
        np.clip(xs, 0, w - 1, out=xs)
        x0 = np.floor(xs)
        frac = xs - x0
        ys = np.where(depth > 0, map_y, np.float32(0))
        x = cv2.remap(warp.step, x0, ys, cv2.INTER_NEAREST)  # exact gathers at integer positions
        x *= cv2.merge([frac, frac, frac])
        x += cv2.remap(warp.rows, x0, ys, cv2.INTER_NEAREST)  # linear between x0 and x0 + 1
        mu_x = _box3(x)
        mu_xy = mu_x * mu_y
        a = cv2.addWeighted(mu_xy, 2.0, mu_xy, 0.0, SSIM_C1)  # 2 mu_x mu_y + C1
        num = a * cv2.addWeighted(_box3(x * y), 2.0, a, -1.0, SSIM_C1 + SSIM_C2)  # * (2 sigma_xy + C2)
        d1 = mu_x * mu_x
        d2 = cv2.addWeighted(_box3(x * x), 1.0, d1, -1.0, 0.0)  # sigma_x
        d2 += var_y_c2
        d1 += mu_yy_c1
        den = d1 * d2  # (mu_x^2 + mu_y^2 + C1) * (sigma_x + sigma_y + C2)
        ratio = np.clip(num / den, -1, 1, out=num)  # clamp((1 - r) / 2, 0, 1) == (1 - clip(r, -1, 1)) / 2
        loss = cv2.transform(ratio, _SSIM_WEIGHTS)
        loss += cv2.transform(cv2.absdiff(x, y), _L1_WEIGHTS)
        better = loss < best_loss
        np.copyto(best_loss, loss, where=better)
        np.copyto(best, depth, where=better)
    return best[r0 - a0 : r1 - a0]


def fuse_candidates(
    base: np.ndarray,
    lookup: np.ndarray,
    depths: np.ndarray,
    fx: float,
    baseline: float,
    base_is_right: bool,
    sampling: Sampling = Sampling.REFERENCE,
    strip_bytes: int = 1 << 19,
) -> np.ndarray:
    """Per pixel the candidate depth with the lowest reprojection loss.

    The image is processed in strips of rows whose float images take about ``strip_bytes``,
    so that the working set stays in the CPU caches (the result does not depend on it).

    Args:
        base, lookup: (H, W, 3) float32 RGB in [0, 1].
        depths: (K, H, W) float32 candidate depths (0 = invalid) from fx, baseline.
    Returns:
        (H, W) float32 depth of the winner (0 where an invalid candidate wins).
    """
    h, w, _ = base.shape
    warp = _prepare(base, lookup, fx, baseline, base_is_right, sampling)
    candidates = _distinct(depths)
    n = max(8, strip_bytes // (w * 12))
    return np.concatenate([_fuse_rows(base, candidates, warp, r0, min(h, r0 + n)) for r0 in range(0, h, n)])


def fused_depth_hint(
    base: np.ndarray,
    lookup: np.ndarray,
    base_is_right: bool,
    fx: float,
    baseline: float,
    matchers: Sequence[cv2.StereoSGBM],
    sampling: Sampling = Sampling.REFERENCE,
) -> np.ndarray:
    """The fused hint of one view: (H, W) float32 depth in the unit of ``baseline``, 0 = none.

    Args:
        base, lookup: (H, W, 3) uint8 RGB rectified images at the hint resolution.
        fx: focal length in pixels at this resolution.
    """
    disp = sgbm_disparities(base, lookup, matchers, base_is_right)
    depths = disparity_to_depth(disp, fx, baseline)
    to_float = np.float32(1 / 255)
    return fuse_candidates(
        base.astype(np.float32) * to_float,
        lookup.astype(np.float32) * to_float,
        depths,
        fx,
        baseline,
        base_is_right,
        sampling,
    )
