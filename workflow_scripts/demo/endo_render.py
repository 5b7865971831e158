"""Render endoscope frames of a cavity: point light at the camera, distortion, aperture."""

from __future__ import annotations

import numpy as np

from workflow_scripts.demo.endo_scene import TEX_HW, Cavity
from workflow_scripts.demo.raycast import MeshScene
from workflow_scripts.demo.textures import MipTextures
from workflow_scripts.endo.camera import EndoCamera

SHININESS = 40.0


class CavityRenderer:
    """Ray-traced endoscope views of a :class:`Cavity`."""

    def __init__(
        self, cavity: Cavity, texture: MipTextures, light: float, specular: float, threads: int = 0
    ) -> None:
        self.verts, self.tris, self.su, self.vnormals = cavity.render_mesh()
        self.mesh = MeshScene(self.verts, self.tris, threads)
        self.texture = texture
        self.texel = np.array([cavity.s[-1] / TEX_HW[0], cavity.circumference / TEX_HW[1]])
        self.light = light
        self.specular = specular
        self._rays: dict = {}

    def _camera_rays(self, camera: EndoCamera | None, K: np.ndarray, hw: tuple[int, int]):
        """Pixels inside the aperture (flat indices), unit rays in the camera frame, their
        z components, aperture coverage in [0, 1] and per-ray angular pixel size (rad)."""
        key = (None if camera is None else camera.dist.tobytes(), K.tobytes(), hw)
        if key in self._rays:
            return self._rays[key]
        h, w = hw
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        cover = np.ones(h * w)
        if camera is not None and camera.aperture is not None:
            cx, cy, rad = camera.aperture
            cover = np.clip(rad - np.hypot(u - cx, v - cy) + 0.5, 0.0, 1.0).ravel()
        idx = np.nonzero(cover > 0)[0]
        uu, vv = u.ravel()[idx], v.ravel()[idx]
        if camera is None or not np.any(camera.dist):
            xy = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1]], 1)
        else:
            xy = camera.undistorted_rays(uu, vv)
        d = np.concatenate([xy, np.ones((len(idx), 1))], 1)
        norm = np.linalg.norm(d, axis=1)
        # angular size of a pixel: distance to the ray of the neighbouring pixel
        pix_angle = 1.0 / (K[0, 0] * norm)
        self._rays[key] = (idx, d / norm[:, None], 1.0 / norm, cover[idx], pix_angle)
        return self._rays[key]

    def render(
        self,
        world_from_cam: np.ndarray,
        camera: EndoCamera | None = None,
        K: np.ndarray | None = None,
        hw: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render one frame.

        Args:
            world_from_cam: (4, 4) pose in mm (x right, y down, z forward).
            camera: distorted endoscope camera (K, distortion, aperture); or None and give
                ``K`` / ``hw`` for an ideal pinhole view without aperture.
        Returns:
            rgb (H, W, 3) float32 in [0, 1] (black outside the aperture and where no
            surface is hit); depth (H, W) float64 camera z in mm, 0 where nothing is seen.
        """
        K = camera.K if camera is not None else K
        hw = camera.size if camera is not None else hw
        idx, rays, zfac, cover, pix_angle = self._camera_rays(camera, K, hw)
        dirs = rays @ world_from_cam[:3, :3].T
        origin = world_from_cam[:3, 3]
        hits = self.mesh.cast(origin, dirs)
        dist = self.mesh.refine(origin, dirs, hits)
        ok = np.isfinite(dist) & (dist > 0)
        rgb = np.zeros((hw[0] * hw[1], 3), np.float32)
        depth = np.zeros(hw[0] * hw[1])
        k = np.nonzero(ok)[0]
        tri = self.tris[hits.prim[k]]
        bu, bv = hits.uv[k, 0:1].astype(np.float64), hits.uv[k, 1:2].astype(np.float64)
        bw = 1.0 - bu - bv
        su = bw * self.su[tri[:, 0]] + bu * self.su[tri[:, 1]] + bv * self.su[tri[:, 2]]
        n = bw * self.vnormals[tri[:, 0]] + bu * self.vnormals[tri[:, 1]] + bv * self.vnormals[tri[:, 2]]
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        r = dist[k]
        cos = np.clip(-np.einsum("ij,ij->i", n, dirs[k]), 0.0, 1.0)
        footprint = r * pix_angle[k] / np.sqrt(np.maximum(cos, 0.05))
        level = np.log2(np.maximum(footprint / self.texel.mean(), 1e-6))
        albedo = self.texture.sample(
            np.zeros(len(k), np.int64), su[:, 0] / self.texel[0], su[:, 1] / self.texel[1], level
        )
        irradiance = self.light * 100.0 / r**2  # light = radiance at 10 mm, inverse square
        lin = albedo * (cos * irradiance)[:, None] + self.specular * (cos**SHININESS * irradiance)[:, None]
        out = np.clip(lin, 0.0, 1.0) ** (1 / 2.2) * cover[k, None]
        rgb[idx[k]] = out
        depth[idx[k]] = r * zfac[k]
        return rgb.reshape(hw[0], hw[1], 3), depth.reshape(hw)
