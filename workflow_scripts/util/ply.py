"""PLY files (plyfile): the one reader and writer of points and meshes in the workflow.

Point clouds (export_point_clouds, register_ct), the CT surface shown in the report and the
endoscopy reference's ``structure.ply`` are all read by :func:`read_ply`; clouds are written by
:func:`write_ply` (binary little-endian, atomically).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from workflow_scripts.util.errors import InputDataError
from workflow_scripts.util.io import atomic_file

__all__ = ["PlyContents", "read_ply", "write_ply"]

_RGB = ("red", "green", "blue")


@dataclass
class PlyContents:
    """A PLY's vertices, triangles and other scalar vertex properties.

    Attributes:
        vertices: (N, 3) float64 x, y, z in the file's unit.
        faces: (M, 3) int64 triangles, or None without a face element (a point cloud).
        properties: name -> (N,) array in the file's type for every other scalar vertex
            property (normals, colours, ...).
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    properties: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def colors(self) -> np.ndarray | None:
        """(N, 3) uint8 RGB from red, green, blue, or None without them."""
        if not all(k in self.properties for k in _RGB):
            return None
        return np.stack([self.properties[k] for k in _RGB], 1).astype(np.uint8)


def _read(path: Path, fix: str) -> PlyData:
    try:  # triangles first (fast: fixed-length lists), then any polygon lists
        return PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3}})
    except Exception:  # noqa: BLE001 - plyfile raises several types; retried without the hint
        try:
            return PlyData.read(str(path))
        except Exception as err:  # noqa: BLE001
            raise InputDataError(path, f"cannot be read as PLY ({err})", fix) from err


def _triangles(path: Path, ply: PlyData) -> np.ndarray | None:
    faces = ply["face"].data
    if not len(faces):
        return None
    key = "vertex_indices" if "vertex_indices" in faces.dtype.names else faces.dtype.names[0]
    column = faces[key]
    try:
        tris = (
            column.astype(np.int64)
            if column.dtype != object
            else np.stack([np.asarray(f, np.int64) for f in column])
        )
    except ValueError as err:  # ragged: polygons of different sizes
        raise InputDataError(path, "faces are not all triangles", "triangulate the surface") from err
    if tris.ndim != 2 or tris.shape[1] != 3:
        raise InputDataError(path, f"faces have {tris.shape[1:]} vertices", "triangulate the surface")
    return tris


def read_ply(
    path: str | Path, *, need_faces: bool = False, fix: str = "re-run the rule that writes it"
) -> PlyContents:
    """Read a binary or ASCII PLY with a ``vertex`` element (x, y, z) and, for meshes, a ``face``
    element of triangles. Errors name the file and end with ``fix``.

    Args:
        need_faces: raise if the file has no triangles (a CT surface).
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found", fix)
    ply = _read(path, fix)
    names = [e.name for e in ply.elements]
    if "vertex" not in names:
        raise InputDataError(path, "PLY without a 'vertex' element", fix)
    vertex = ply["vertex"].data
    if not {"x", "y", "z"} <= set(vertex.dtype.names):
        raise InputDataError(path, f"vertex properties {vertex.dtype.names} lack x, y, z", fix)
    verts = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float64)
    props = {k: np.asarray(vertex[k]) for k in vertex.dtype.names if k not in "xyz" and vertex[k].ndim == 1}
    tris = _triangles(path, ply) if "face" in names else None
    if need_faces and tris is None:
        raise InputDataError(
            path,
            "a surface mesh is needed but the PLY has no faces",
            "give the CT surface as a triangle mesh (vertex + face elements)",
        )
    return PlyContents(verts, tris, props)


def write_ply(
    path: str | Path, points: np.ndarray, colors: np.ndarray | None = None, comments: list[str] | None = None
) -> None:
    """Write a point cloud as binary little-endian PLY (x, y, z float32 [+ red, green, blue
    uint8]), atomically.

    Args:
        points: (N, 3); colors: (N, 3) uint8 RGB or None (no colour properties).
        comments: header comments (e.g. the unit and the coordinate frame).
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {points.shape}")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [(k, "u1") for k in _RGB]
    vertex = np.empty(len(points), dtype=fields)
    for i, k in enumerate("xyz"):
        vertex[k] = points[:, i]
    if colors is not None:
        for i, k in enumerate(_RGB):
            vertex[k] = colors[:, i]
    ply = PlyData(
        [PlyElement.describe(vertex, "vertex")], text=False, byte_order="<", comments=comments or []
    )
    with atomic_file(path) as tmp:
        ply.write(str(tmp))
