"""Camera geometry for self-supervised depth: back-projection, projection, warping, flow.

Conventions (DESIGN.md §4):

* Pixel coordinates are 0-based with pixel centres at integers: array element ``[v, u]`` is the
  pixel centred at ``(u, v)`` (OpenCV). ``K`` must follow the same convention; KITTI's ``P_rect``
  is 1-based, so use ``KittiRig.K(cam, zero_based=True)``. Shapes: depth ``(B, 1, H, W)``,
  images ``(B, C, H, W)``, ``K`` ``(B, 3, 3)`` (or ``(3, 3)``), poses ``(B, 4, 4)`` named
  ``a_from_b``; warping a source image into the target view takes ``src_from_tgt``.
* Sampling convention (:data:`SampleConvention`), i.e. where ``grid_sample`` reads pixel ``u``:

  ``"exact"`` (default)
      ``grid = 2u/(W-1) - 1`` with ``align_corners=True``: reads exactly at ``u``.
  ``"monodepth2"``
      the same normalisation by ``W-1`` but ``align_corners=False`` (torch >= 1.3 default),
      as monodepth2, Depth Hints, SC-Depth and EPCDepth run today: reads at
      ``u W/(W-1) - 1/2``, up to half a pixel off (seed_methods §3.3, §6.4.3, §6.6).
  ``"endoscopy"``
      ``grid = 2u/W - 1`` with ``align_corners=True`` (what the endoscopy reference computed on
      the torch < 1.3 it was written for): reads at ``u (W-1)/W`` (§6.1).

Rotation/pose-vector helpers live in :mod:`models.rotations` and are re-exported here.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from models.rotations import (
    RotationKind,
    axis_angle_to_matrix,
    euler_to_matrix,
    invert_pose,
    mat_to_pose_vec,
    matrix_to_axis_angle,
    matrix_to_euler,
    pose_vec_to_mat,
)

SampleConvention = Literal["exact", "monodepth2", "endoscopy"]
PROJECT_EPS = 1e-7  # monodepth2's Project3D epsilon on z

__all__ = [
    "SampleConvention", "RotationKind", "pixel_coordinates", "back_project", "transform_points",
    "project", "pixels_to_grid", "sample", "in_view_mask", "Warp", "warp", "depth_in_other_view",
    "flow_from_depth", "warp_depth_endoscopy", "scale_intrinsics", "disp_to_depth", "depth_to_disp",
    "sc_depth_from_disp", "scale_to_sparse_depth", "axis_angle_to_matrix", "matrix_to_axis_angle",
    "euler_to_matrix", "matrix_to_euler", "pose_vec_to_mat", "mat_to_pose_vec", "invert_pose",
]


def _check_map(x: Tensor, name: str, channels: int | None = None) -> None:
    if x.dim() != 4 or (channels is not None and x.shape[1] != channels):
        c = "C" if channels is None else channels
        raise ValueError(f"{name} must have shape (B, {c}, H, W), got {tuple(x.shape)}")


def _batched(m: Tensor, n: int, name: str) -> Tensor:
    if m.dim() == 2:
        m = m[None]
    if m.dim() != 3 or m.shape[1:] != (n, n):
        raise ValueError(f"{name} must have shape (B, {n}, {n}) or ({n}, {n}), got {tuple(m.shape)}")
    return m


def pixel_coordinates(h: int, w: int, *, device: torch.device | None = None,
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """Homogeneous pixel centres (1, 3, H, W): channel 0 = u (column), 1 = v (row), 2 = 1."""
    v, u = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                          torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([u, v, torch.ones_like(u)])[None]


def back_project(depth: Tensor, inv_K: Tensor) -> Tensor:
    """3-D points (B, 3, H, W) ``X = z K^-1 [u, v, 1]^T`` of a z-depth map (B, 1, H, W)."""
    _check_map(depth, "depth", 1)
    inv_K = _batched(inv_K, 3, "inv_K")
    b, _, h, w = depth.shape
    pix = pixel_coordinates(h, w, device=depth.device, dtype=depth.dtype).view(1, 3, -1)
    rays = inv_K @ pix  # (B, 3, HW)
    return (rays * depth.view(b, 1, -1)).view(b, 3, h, w)


def transform_points(T: Tensor, points: Tensor) -> Tensor:
    """``R X + t`` for poses T (B, 4, 4) ``a_from_b`` and points (B, 3, H, W) in frame b."""
    _check_map(points, "points", 3)
    T = _batched(T, 4, "T")
    b, _, h, w = points.shape
    out = T[:, :3, :3] @ points.reshape(b, 3, -1) + T[:, :3, 3:]
    return out.view(b, 3, h, w)


def project(points: Tensor, K: Tensor, eps: float = PROJECT_EPS) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (B, 2, H, W) and z (B, 1, H, W) of camera-frame points (B, 3, H, W):
    ``(u, v) = (K X)_xy / max(z, eps)`` (monodepth2's Project3D divides by ``z + eps``, which is
    off by a relative 1e-7; points with z <= eps land far outside: check :func:`in_view_mask`)."""
    _check_map(points, "points", 3)
    K = _batched(K, 3, "K")
    b, _, h, w = points.shape
    p = (K @ points.reshape(b, 3, -1)).view(b, 3, h, w)
    z = p[:, 2:3]
    return p[:, :2] / z.clamp(min=eps), z


def pixels_to_grid(pix: Tensor, hw: tuple[int, int],
                   convention: SampleConvention = "exact") -> tuple[Tensor, bool]:
    """``grid_sample`` grid (B, H', W', 2) and its ``align_corners`` flag for pixel coordinates
    (B, 2, H', W') in an image of size ``hw`` (see the module docstring for the conventions)."""
    h, w = hw
    if convention in ("exact", "monodepth2"):
        scale = pix.new_tensor([max(w - 1, 1), max(h - 1, 1)])
    elif convention == "endoscopy":
        scale = pix.new_tensor([w, h])
    else:
        raise ValueError(f"unknown sampling convention {convention!r}")
    grid = (2.0 * pix / scale[None, :, None, None] - 1.0).permute(0, 2, 3, 1)
    return grid, convention != "monodepth2"


def sample(image: Tensor, pix: Tensor, convention: SampleConvention = "exact",
           padding_mode: str = "border", mode: str = "bilinear") -> Tensor:
    """Read ``image`` (B, C, H, W) at pixel coordinates ``pix`` (B, 2, H', W') -> (B, C, H', W').

    Args:
        padding_mode: "border" (monodepth2), "zeros" (SC-Depth, endoscopy) or "reflection".
    """
    _check_map(image, "image")
    _check_map(pix, "pix", 2)
    grid, align = pixels_to_grid(pix, image.shape[-2:], convention)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=align)


def in_view_mask(pix: Tensor, z: Tensor, hw: tuple[int, int], min_z: float = 1e-3,
                 tol: float = 1e-4) -> Tensor:
    """Bool (B, 1, H, W): point in front of the camera (z > min_z) and its pixel coordinates
    within ``[0, W-1] x [0, H-1]`` (``tol`` pixels of rounding allowed)."""
    h, w = hw
    u, v = pix[:, :1], pix[:, 1:2]
    return (z > min_z) & (u >= -tol) & (u <= w - 1 + tol) & (v >= -tol) & (v <= h - 1 + tol)


class Warp(NamedTuple):
    """Result of :func:`warp` (all maps on the target pixel grid).

    Attributes:
        image: (B, C, H, W) source image resampled into the target view.
        pixels: (B, 2, H, W) where each target pixel lands in the source image.
        depth: (B, 1, H, W) z of each target point in the source camera (SC-Depth's
            "computed depth").
        valid: (B, 1, H, W) bool, the point is in front of the source camera and inside its image.
    """

    image: Tensor
    pixels: Tensor
    depth: Tensor
    valid: Tensor


def warp(source: Tensor, depth: Tensor, K: Tensor, src_from_tgt: Tensor, *,
         convention: SampleConvention = "exact", padding_mode: str = "border",
         K_source: Tensor | None = None) -> Warp:
    """Inverse-warp ``source`` (B, C, H, W) into the target view using the target depth.

    Args:
        depth: target z-depth (B, 1, H, W), same unit as the pose translation.
        K: target intrinsics (B, 3, 3); ``K_source`` defaults to ``K``.
        src_from_tgt: (B, 4, 4) pose of the target camera in the source camera frame.
    """
    _check_map(source, "source")
    points = transform_points(src_from_tgt, back_project(depth, torch.linalg.inv(_batched(K, 3, "K"))))
    pix, z = project(points, K if K_source is None else K_source)
    image = sample(source, pix, convention, padding_mode)
    return Warp(image, pix, z, in_view_mask(pix, z, source.shape[-2:]))


def depth_in_other_view(depth: Tensor, K: Tensor, other_from_this: Tensor) -> Tensor:
    """z (B, 1, H, W) of each pixel's 3-D point expressed in another camera frame.

    The endoscopy reference's ``depth_maps_1_calculate`` (frame-2 depth seen from camera 1),
    sampled by :func:`warp_depth_endoscopy`.
    """
    points = transform_points(other_from_this, back_project(depth, torch.linalg.inv(_batched(K, 3, "K"))))
    return points[:, 2:3]


def flow_from_depth(depth: Tensor, K: Tensor, other_from_this: Tensor, normalise: bool = True) -> Tensor:
    """Optical flow (B, 2, H, W) of this frame's pixels into another frame, from depth and pose.

    ``flow = (u' - u, v' - v)``, divided by ``(W, H)`` when ``normalise`` (the endoscopy
    reference's normalised flow, seed_methods §6.1). With the reference's ``(R, t)`` =
    ``(R_1wrt2, t_1wrt2)`` (camera-2 -> camera-1 coordinates), ``other_from_this`` for the flow of
    frame 1 is the inverse of ``[[R, t], [0, 1]]``.
    """
    _check_map(depth, "depth", 1)
    b, _, h, w = depth.shape
    points = transform_points(other_from_this, back_project(depth, torch.linalg.inv(_batched(K, 3, "K"))))
    pix, _ = project(points, K)
    flow = pix - pixel_coordinates(h, w, device=depth.device, dtype=depth.dtype)[:, :2]
    if normalise:
        flow = flow / flow.new_tensor([w, h])[None, :, None, None]
    return flow


def warp_depth_endoscopy(depth1: Tensor, depth2: Tensor, mask: Tensor, K: Tensor, cam2_from_cam1: Tensor,
                         convention: SampleConvention = "exact") -> tuple[Tensor, Tensor]:
    """The endoscopy reference's depth warping 2 -> 1 (``_depth_warping``, seed_methods §6.1).

    Frame-2 depth is re-expressed in camera 1 and sampled where frame-1 pixels project into
    frame 2. Depths are masked by the boundary ``mask`` (B, 1, H, W) first, as in the reference.

    Returns:
        warped: (B, 1, H, W) ``D_{2->1}``, camera-1 z of the frame-2 surface seen at each pixel.
        intersect: (B, 1, H, W) float {0, 1}: ``sample(mask) * mask >= 0.9`` and the point is
            in front of camera 2.
    """
    depth1, depth2 = depth1 * mask, depth2 * mask
    w = warp(mask, depth1, K, cam2_from_cam1, convention=convention, padding_mode="zeros")
    z21 = depth_in_other_view(depth2, K, invert_pose(_batched(cam2_from_cam1, 4, "cam2_from_cam1"))) * mask
    warped = sample(z21, w.pixels, convention, padding_mode="zeros")
    intersect = ((w.image * mask >= 0.9) & (w.depth > 0)).to(depth1.dtype)
    return warped, intersect


def scale_intrinsics(K: Tensor, sx: float, sy: float) -> Tensor:
    """Intrinsics (…, 3, 3) after resizing the image by ``(sx, sy)`` (e.g. 640/1242), with
    0-based pixel centres: ``f' = f s`` and ``c' = (c + 1/2) s - 1/2`` (exact for area
    resampling; monodepth2's normalised-K recipe omits the half pixel)."""
    out = K.clone()
    out[..., 0, 0] = K[..., 0, 0] * sx
    out[..., 1, 1] = K[..., 1, 1] * sy
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return out


def disp_to_depth(disp: Tensor, min_depth: float = 0.1, max_depth: float = 100.0) -> tuple[Tensor, Tensor]:
    """monodepth2: sigmoid output -> (scaled disparity ``1/max + (1/min - 1/max) disp``, depth)."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1.0 / scaled


def depth_to_disp(depth: Tensor, min_depth: float = 0.1, max_depth: float = 100.0) -> Tensor:
    """Inverse of :func:`disp_to_depth`: the sigmoid-domain disparity of a depth."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    return (1.0 / depth - min_disp) / (max_disp - min_disp)


def sc_depth_from_disp(disp: Tensor) -> Tensor:
    """SC-Depth's depth of a sigmoid output: ``1 / (10 disp + 0.01)`` in [~0.1, 100] (§6.6)."""
    return 1.0 / (10.0 * disp + 0.01)


def scale_to_sparse_depth(depth: Tensor, sparse_depth: Tensor, sparse_mask: Tensor,
                          eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """The endoscopy reference's DepthScalingLayer (seed_methods §6.1): rescale each predicted
    depth map to the SfM sparse depths, gradient flowing through the scale.

    Args:
        depth: predicted depth (B, 1, H, W), arbitrary scale, > 0.
        sparse_depth: (B, 1, H, W) SfM depth at sparse pixels, 0 elsewhere.
        sparse_mask: (B, 1, H, W) weights; pixels with weight > 1e-8 are sparse points.
    Returns:
        scaled: ``s_b * depth`` with ``s_b = mean over kept points of sparse / (eps + depth)``;
            kept points are those deeper than half the mean sparse depth.
        spread: mean over the batch of std(scale map) / mean(scale), the teacher-era regulariser.
    """
    binary = (sparse_mask > 1e-8).to(depth.dtype)
    dims = (1, 2, 3)
    mean_sparse = (sparse_depth * binary).sum(dims, keepdim=True) / binary.sum(dims, keepdim=True)
    above = (sparse_depth > 0.5 * mean_sparse).to(depth.dtype)
    scale_map = sparse_depth * above / (eps + depth)
    count = above.sum(dims, keepdim=True)
    mean_scale = scale_map.sum(dims, keepdim=True) / count
    centred = scale_map - above * mean_scale
    std = torch.sqrt((centred * centred).sum(dims, keepdim=True) / count)
    return mean_scale * depth, (std / mean_scale).mean()
