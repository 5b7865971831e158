"""Shared plumbing of the report figures: headless matplotlib, atomic PNG output, PLY input."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on compute nodes; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from plyfile import PlyData  # noqa: E402

from workflow_scripts.util import InputDataError, atomic_file  # noqa: E402

__all__ = ["DPI", "new_figure", "plt", "read_ply", "save_png"]

DPI = 100  # pixels per inch of every report figure: sizes in inches x 100 = pixels


def new_figure(width_in: float, height_in: float, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """A figure of ``width_in`` x ``height_in`` inches with a grid of axes (``plt.subplots``
    keyword arguments), axes always returned as a 2-D array."""
    fig, axes = plt.subplots(figsize=(width_in, height_in), dpi=DPI, squeeze=False, **kwargs)
    return fig, axes


def save_png(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically and close it (figures are never reused)."""
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def read_ply(path: str | Path, need_faces: bool = False) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Vertices, triangles and extra vertex properties of a PLY file.

    Args:
        path: binary or ASCII PLY with a ``vertex`` element (x, y, z) and, for meshes, a
            ``face`` element (``vertex_indices``, triangles).
        need_faces: raise if the file has no triangles (a CT surface).

    Returns:
        vertices (N, 3) float64 in the file's unit, triangles (M, 3) int64 or None, and
        {name: (N,) float64} for every other scalar vertex property (normals, residuals...).
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found", "re-run the rule that writes it")
    try:  # triangles first (fast: fixed-length lists), then any polygon lists
        ply = PlyData.read(str(path), known_list_len={"face": {"vertex_indices": 3}})
    except Exception:  # noqa: BLE001 - plyfile raises several types; retried without the hint
        try:
            ply = PlyData.read(str(path))
        except Exception as err:  # noqa: BLE001
            raise InputDataError(path, f"cannot read as PLY ({err})",
                                 "re-run the rule that writes it") from err
    names = [e.name for e in ply.elements]
    if "vertex" not in names:
        raise InputDataError(path, "PLY without a 'vertex' element", "write points as a vertex element")
    vertex = ply["vertex"].data
    if not {"x", "y", "z"} <= set(vertex.dtype.names):
        raise InputDataError(path, f"vertex properties {vertex.dtype.names} lack x, y, z", "write x, y, z")
    verts = np.stack([vertex[k] for k in "xyz"], axis=1).astype(np.float64)
    extra = {k: np.asarray(vertex[k], np.float64) for k in vertex.dtype.names
             if k not in "xyz" and vertex[k].ndim == 1}
    tris = None
    if "face" in names:
        faces = ply["face"].data
        key = "vertex_indices" if "vertex_indices" in faces.dtype.names else faces.dtype.names[0]
        column = faces[key]
        try:
            tris = (column.astype(np.int64) if column.dtype != object
                    else np.stack([np.asarray(f, np.int64) for f in column])) if len(faces) else None
        except ValueError as err:  # ragged: polygons of different sizes
            raise InputDataError(path, "faces are not all triangles", "triangulate the surface") from err
        if tris is not None and tris.shape[1] != 3:
            raise InputDataError(path, f"faces have {tris.shape[1]} vertices", "triangulate the surface")
    if need_faces and tris is None:
        raise InputDataError(path, "a surface mesh is needed but the PLY has no faces",
                             "give the CT surface as a triangle mesh (vertex + face elements)")
    return verts, tris, extra
