"""The CT surface (triangle mesh, millimetres) that clouds are registered to: loading with the
checks of bad input, uniform samples with normals, and distances to the triangles (not only the
vertices) from ``open3d.t.geometry.RaycastingScene.compute_distance``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import open3d as o3d

from workflow_scripts.util import InputDataError

__all__ = ["CTSurface", "load_ct_surface", "residual_stats"]


@dataclass
class CTSurface:
    """The CT mesh (mm) with what registration needs: samples, normals, a distance query.

    ``cache`` keeps what is derived from the mesh alone (samples, features) for the next
    registration to the same CT (the bench registers many clouds to one CT); the cached
    objects are shared, callers must not modify them.
    """

    path: Path
    mesh: o3d.geometry.TriangleMesh
    scene: o3d.t.geometry.RaycastingScene
    cache: dict = field(default_factory=dict, repr=False)

    @cached_property
    def extent_mm(self) -> float:
        """Largest side of the mesh's axis-aligned bounding box (mm; computed once)."""
        v = np.asarray(self.mesh.vertices)
        return float(np.max(v.max(axis=0) - v.min(axis=0)))

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Unsigned distance (mm) of points (N, 3) in mm to the nearest point on a triangle."""
        q = o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
        return self.scene.compute_distance(q).numpy().astype(np.float64)

    def sample(self, spacing_mm: float, seed: int) -> o3d.geometry.PointCloud:
        """Uniform sample of the surface about ``spacing_mm`` apart, with triangle normals
        (seeded; cached, the same object for the same arguments)."""
        key = ("sample", float(spacing_mm), int(seed))
        if key not in self.cache:
            n = int(np.clip(self.mesh.get_surface_area() / spacing_mm**2, 1000, 2_000_000))
            o3d.utility.random.seed(seed)
            self.cache[key] = self.mesh.sample_points_uniformly(number_of_points=n, use_triangle_normal=True)
        return self.cache[key]


def load_ct_surface(path: str | Path) -> CTSurface:
    """Read the CT surface PLY (mm) and check that it has points and triangles."""
    path = Path(path)
    fix = "give endoscopy.ct_surface a triangle mesh (PLY with vertex and face elements, millimetres)"
    if not path.is_file():
        raise InputDataError(path, "CT surface file is missing", fix)
    mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.vertices) == 0:
        raise InputDataError(path, "CT surface has no points (vertices)", fix)
    if len(mesh.triangles) == 0:
        problem = f"CT surface has {len(mesh.vertices)} points but no faces (triangles)"
        raise InputDataError(path, problem, fix)
    mesh.compute_triangle_normals()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    return CTSurface(path=path, mesh=mesh, scene=scene)


def residual_stats(distances: np.ndarray) -> dict[str, float]:
    """mean, median, RMS, 95th percentile and max of distances (mm)."""
    d = np.asarray(distances, np.float64)
    return {
        "mean_mm": float(d.mean()),
        "median_mm": float(np.median(d)),
        "rms_mm": float(np.sqrt(np.mean(d**2))),
        "p95_mm": float(np.percentile(d, 95)),
        "max_mm": float(d.max()),
    }
