"""Ray casting against triangle meshes with Open3D's RaycastingScene (Embree)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d


@dataclass
class Hits:
    """Result of casting N rays.

    Attributes:
        t: (N,) float64 ray parameter of the first hit (inf = no hit); with unit directions
            this is the distance along the ray.
        prim: (N,) int64 triangle index (-1 = no hit).
        uv: (N, 2) float32 barycentric coordinates (u, v) of the hit in its triangle
            (point = (1-u-v) a + u b + v c).
    """

    t: np.ndarray
    prim: np.ndarray
    uv: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return np.isfinite(self.t)


class MeshScene:
    """A static triangle mesh that rays can be cast against.

    Args:
        vertices: (V, 3) float positions.
        triangles: (T, 3) int vertex indices.
        threads: threads per ray cast (0 = all cores).
    """

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, threads: int = 0) -> None:
        self.threads = threads  # 0 = Embree's default (all cores); 1 inside worker processes
        self.vertices = np.asarray(vertices, np.float64)
        self.triangles = np.asarray(triangles, np.int64)
        mesh = o3d.t.geometry.TriangleMesh()
        mesh.vertex.positions = o3d.core.Tensor(self.vertices.astype(np.float32))
        mesh.triangle.indices = o3d.core.Tensor(self.triangles.astype(np.int32))
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(mesh)
        tri = self.vertices[self.triangles]
        self.normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (T, 3), unnormalised
        self._plane = np.einsum("ij,ij->i", self.normals, tri[:, 0])  # n . a

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """Cast rays (origins (N, 3) or (3,), directions (N, 3)) and return the first hits.

        Embree works in float32: keep coordinates near the origin (metres for KITTI-sized
        scenes, millimetres for the endoscope) so the hit error stays well below 1 mm.
        """
        directions = np.asarray(directions, np.float32)
        origins = np.broadcast_to(np.asarray(origins, np.float32), directions.shape)
        rays = np.concatenate([origins, directions], axis=1)
        ans = self._scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays)), nthreads=self.threads)
        t = ans["t_hit"].numpy().astype(np.float64)
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        prim[~np.isfinite(t)] = -1
        return Hits(t=t, prim=prim, uv=ans["primitive_uvs"].numpy())

    def refine(self, origins: np.ndarray, directions: np.ndarray, hits: Hits) -> np.ndarray:
        """Exact (float64) ray parameters: intersect each ray with the plane of the triangle
        Embree reported (removes Embree's float32 error). Returns (N,) t, inf for misses."""
        t = np.full(hits.t.shape, np.inf)
        ok = np.nonzero(hits.prim >= 0)[0]
        prim = hits.prim[ok]
        n = self.normals[prim]
        d = np.asarray(directions, np.float64)[ok]
        o = np.asarray(origins, np.float64)
        n_o = n @ o if o.ndim == 1 else np.einsum("ij,ij->i", n, o[ok])
        denom = np.einsum("ij,ij->i", n, d)
        t[ok] = (self._plane[prim] - n_o) / np.where(np.abs(denom) > 1e-15, denom, 1e-15)
        return t
