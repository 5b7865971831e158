"""Render the street scene: rectified camera images with exact depth and Cityscapes labels,
and Velodyne scans."""

from __future__ import annotations

import numpy as np

from workflow_scripts.demo.kitti_scene import SKY_LABEL, TEXEL_M, StreetScene
from workflow_scripts.demo.raycast import MeshScene
from workflow_scripts.demo.textures import MipTextures

SUN = np.array([-0.45, -1.0, -0.35]) / np.linalg.norm([-0.45, -1.0, -0.35])  # towards the sun
AMBIENT, DIFFUSE = 0.42, 0.68
_FACE_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], np.float64)
_FACE_ST_AXES = np.array([[2, 1], [0, 2], [0, 1]])
LANE_WHITE = np.array([0.88, 0.88, 0.86], np.float32)


class StreetRenderer:
    """Ray-traced views of a :class:`StreetScene` (Embree via Open3D, exact float64 depth)."""

    def __init__(self, scene: StreetScene, textures: MipTextures, threads: int = 0) -> None:
        self.textures, self.threads = textures, threads
        self.set_scene(scene)
        self._rays: dict = {}
        coarsest = textures.levels[-1].reshape(len(TEXEL_M), -1, 3)
        self._mean_albedo = coarsest.mean(axis=1)  # (materials, 3), for LiDAR reflectance

    def set_scene(self, scene: StreetScene) -> None:
        """Render ``scene`` from now on (e.g. the street with the traffic of another frame)."""
        self.scene = scene
        self.mesh = MeshScene(*scene.mesh(), self.threads)

    # ---------------------------------------------------------------- surface appearance
    def _surface(
        self, prim: np.ndarray, points: np.ndarray, dirs: np.ndarray, footprint: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Albedo (n, 3) and normals (n, 3) at hit points of the given triangles.

        Args:
            footprint: (n,) size of the ray's footprint across the surface (m) at the hit,
                before foreshortening.
        """
        box = prim // 12
        face = (prim % 12) // 2
        axis = face // 2
        normals = _FACE_NORMALS[face]
        # texture coordinates: the two world axes spanning the face (x: (z, y), y: (x, z), z: (x, y)),
        # in the box's own frame (a moving box carries its texture)
        local = points - self.scene.moved[box]
        st = np.take_along_axis(local, _FACE_ST_AXES[axis], axis=1) + self.scene.offset[box]
        mat = self.scene.material[box]
        texel = TEXEL_M[mat]
        s, t = st[:, 0] / texel, st[:, 1] / texel
        cos = np.abs(np.einsum("ij,ij->i", normals, dirs))
        level = np.log2(np.maximum(footprint / np.sqrt(np.maximum(cos, 0.02)) / texel, 1e-6))
        albedo = self.textures.sample(mat, s, t, level) * self.scene.tint[box]
        road = (mat == 0) & (axis == 1)
        if road.any():
            albedo[road] = self._lane_marks(local[road], footprint[road], cos[road], albedo[road])
        return albedo, normals

    @staticmethod
    def _lane_marks(p: np.ndarray, fp: np.ndarray, cos: np.ndarray, albedo: np.ndarray) -> np.ndarray:
        """Anti-aliased lane markings: dashed centre line, solid lines at the parking strips."""
        fp_z = fp / np.maximum(cos, 0.02)

        def cover(dist, half, width):  # fraction of a footprint of `width` inside |dist| < half
            return np.clip((half - np.abs(dist)) / np.maximum(width, 1e-6) + 0.5, 0.0, 1.0)

        x, z = p[:, 0], p[:, 2]
        dash = cover(np.mod(z, 9.0) - 1.5, 1.5, fp_z)
        c = cover(x, 0.07, fp) * dash
        c = np.maximum(c, cover(np.abs(x) - 3.5, 0.07, fp))
        return albedo * (1 - c[:, None]) + LANE_WHITE * c[:, None]

    def _shade(self, points: np.ndarray, normals: np.ndarray, albedo: np.ndarray) -> np.ndarray:
        """Lambertian sun light with cast shadows, plus ambient."""
        lit = np.einsum("ij,j->i", normals, SUN)
        cand = np.nonzero(lit > 0)[0]
        sun_vis = np.zeros(len(points))
        if cand.size:
            hits = self.mesh.cast(points[cand] + normals[cand] * 1e-3, np.broadcast_to(SUN, (cand.size, 3)))
            sun_vis[cand] = ~hits.hit
        return albedo * (AMBIENT + DIFFUSE * np.clip(lit, 0, 1) * sun_vis)[:, None]

    # ---------------------------------------------------------------- sensors
    def render(
        self, world_from_cam: np.ndarray, K: np.ndarray, hw: tuple[int, int], one_based: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render a rectified pinhole camera.

        Args:
            world_from_cam: (4, 4) camera pose (x right, y down, z forward), metres.
            K: (3, 3) intrinsics; with ``one_based`` the centre of array pixel (0, 0) is at
                image coordinate (1, 1) (KITTI calibration convention), else at (0, 0).
            hw: (height, width).
        Returns:
            rgb: (H, W, 3) float32 linear colour in [0, 1];
            depth: (H, W) float64 z-depth in metres, 0 where the ray hits nothing (sky);
            label: (H, W) uint8 Cityscapes labelId of the surface each pixel's ray hits (sky
            where it hits nothing): exact, from the same rays as the depth.
        """
        h, w = hw
        unit, norm = self._camera_rays(K, hw, one_based)
        dirs = unit @ world_from_cam[:3, :3].T
        origin = world_from_cam[:3, 3]
        hits = self.mesh.cast(origin, dirs)
        dist = self.mesh.refine(origin, dirs, hits)
        ok = np.isfinite(dist) & (dist > 0)
        rgb = np.empty((h * w, 3), np.float32)
        rgb[~ok] = self._sky(dirs[~ok])
        idx = np.nonzero(ok)[0]
        pts = origin + dirs[idx] * dist[idx, None]
        footprint = dist[idx] / K[0, 0]
        albedo, normals = self._surface(hits.prim[idx], pts, dirs[idx], footprint)
        rgb[idx] = self._shade(pts, normals, albedo)
        depth = np.where(ok, dist / norm, 0.0)
        label = np.full(h * w, SKY_LABEL, np.uint8)
        label[idx] = self.scene.label[hits.prim[idx] // 12]
        return rgb.reshape(h, w, 3), depth.reshape(h, w), label.reshape(h, w)

    def _camera_rays(self, K: np.ndarray, hw: tuple[int, int], one_based: bool):
        """Unit ray directions (H*W, 3) in the camera frame and the norms of K^-1 [u, v, 1]."""
        key = (K.tobytes(), hw, one_based)
        if key not in self._rays:
            h, w = hw
            off = 1.0 if one_based else 0.0
            v, u = np.mgrid[0:h, 0:w].astype(np.float64)
            pix = np.stack([u + off, v + off, np.ones_like(u)], -1).reshape(-1, 3)
            d_cam = pix @ np.linalg.inv(K).T  # z = 1
            norm = np.linalg.norm(d_cam, axis=1)
            self._rays[key] = (d_cam / norm[:, None], norm)
        return self._rays[key]

    @staticmethod
    def _sky(dirs: np.ndarray) -> np.ndarray:
        up = np.clip(-dirs[:, 1], 0, 1)[:, None]
        return (np.array([0.78, 0.84, 0.92]) * (1 - up) + np.array([0.42, 0.58, 0.85]) * up).astype(
            np.float32
        )

    def lidar(
        self,
        world_from_velo: np.ndarray,
        beams: int,
        azimuth_steps: int,
        max_range: float,
        range_noise: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Simulated Velodyne HDL-64E sweep (instantaneous, no rolling shutter).

        Beams span +2.0 to -24.9 degrees elevation, azimuth covers 360 degrees.
        Returns:
            (N, 4) float32 points in the Velodyne frame (x forward, y left, z up; metres)
            and reflectance in [0, 1] (mean albedo of the surface's material); rays without a return within
            ``max_range`` are dropped.
        """
        el = np.deg2rad(np.linspace(2.0, -24.9, beams))[:, None]
        az = np.linspace(0.0, 2 * np.pi, azimuth_steps, endpoint=False)[None, :]
        d_velo = np.stack(
            [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) * np.ones_like(az)], -1
        ).reshape(-1, 3)
        dirs = d_velo @ world_from_velo[:3, :3].T
        origin = world_from_velo[:3, 3]
        hits = self.mesh.cast(origin, dirs)
        dist = self.mesh.refine(origin, dirs, hits)
        keep = np.nonzero(np.isfinite(dist) & (dist > 0.5) & (dist < max_range))[0]
        r = dist[keep]
        box = hits.prim[keep] // 12
        refl = (self._mean_albedo[self.scene.material[box]] * self.scene.tint[box]).mean(
            axis=1, keepdims=True
        )
        if range_noise > 0:
            r = r + rng.normal(0.0, range_noise, r.shape)
        xyz = d_velo[keep] * r[:, None]
        return np.concatenate([xyz, refl], axis=1).astype(np.float32)
