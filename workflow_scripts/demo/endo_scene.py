"""A tube-like cavity (millimetres): curved centre line, varying radius, ring folds, vessels.

The surface is a generalised cylinder ``P(s, theta) = c(s) + r(s, theta) (cos theta N(s) +
sin theta B(s))`` with ``c`` an arc-length parametrised centre line and (T, N, B) a
rotation-minimising frame. It is tessellated once; the same triangles are rendered and
written as the "CT" surface, so rendered depth and CT agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from workflow_scripts.demo.textures import MipTextures, fractal_noise
from workflow_scripts.util.options import option

RING_STEP = 0.2  # mm between rings of the mesh
SEGMENTS = 160  # vertices per ring
TEX_HW = (1792, 896)  # texels along s, around the tube


@dataclass(frozen=True)
class CavityConfig:
    """The demo cavity's shape (mm)."""

    length: float = option(90.0, "Length of the centre line (mm).", minimum=20)
    radius: float = option(7.0, "Mean radius (mm).", exclusiveMinimum=0)
    folds: int = option(7, "Ring folds along the cavity.", minimum=0)
    fold_depth: float = option(0.3, "Fraction of the radius a fold reaches inwards.", minimum=0, maximum=0.6)


@dataclass
class Cavity:
    """Tessellated cavity.

    Attributes:
        s: (R,) arc length of each ring (mm).
        centre, T, N, B: (R, 3) centre line and its frame at each ring.
        grid: (R, S + 1, 3) surface points; column S repeats column 0 (texture seam).
        normals: (R, S + 1, 3) unit normals pointing into the cavity.
        circumference: texture period around the tube (mm), 2 pi radius.
    """

    s: np.ndarray
    centre: np.ndarray
    T: np.ndarray
    N: np.ndarray
    B: np.ndarray
    grid: np.ndarray
    normals: np.ndarray
    circumference: float

    def render_mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vertices (V, 3), triangles (T, 3), per-vertex (s, u) surface coordinates in mm
        (u = arc length around the tube at the mean radius) and unit normals; the seam
        column is duplicated so that (s, u) interpolate without wrapping."""
        r, c = self.grid.shape[:2]
        verts = self.grid.reshape(-1, 3)
        s = np.repeat(self.s, c)
        u = np.tile(np.linspace(0.0, self.circumference, c), r)
        tris = _grid_triangles(r, c)
        return verts, tris, np.stack([s, u], 1), self.normals.reshape(-1, 3)

    def ct_mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The closed-around surface for the CT PLY: vertices (V, 3), triangles (T, 3),
        unit normals (V, 3); the seam column is merged, the tube ends stay open."""
        r, c = self.grid.shape[0], self.grid.shape[1] - 1
        verts = self.grid[:, :c].reshape(-1, 3)
        tris = _grid_triangles(r, c + 1)
        col = tris % (c + 1)
        tris = (tris // (c + 1)) * c + np.where(col == c, 0, col)
        return verts, tris, self.normals[:, :c].reshape(-1, 3)


def _grid_triangles(rows: int, cols: int) -> np.ndarray:
    """Two triangles per grid quad (row-major vertex indices), consistent winding."""
    i, j = np.mgrid[0 : rows - 1, 0 : cols - 1]
    a = (i * cols + j).ravel()
    b, c, d = a + 1, a + cols, a + cols + 1
    return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.int64)


def build_cavity(rng: np.random.Generator, cfg: CavityConfig) -> Cavity:
    """Random smooth cavity from ``rng`` (see module docstring)."""
    z = np.linspace(0.0, cfg.length * 1.2, 4000)
    amp = np.array([5.0, 1.2]) * cfg.length / 90.0
    wl = np.array([70.0, 35.0]) * cfg.length / 90.0
    ph = rng.uniform(0, 2 * np.pi, (2, 2))
    x = sum(amp[k] * np.sin(2 * np.pi * z / wl[k] + ph[0, k]) for k in range(2))
    y = sum(amp[k] * np.sin(2 * np.pi * z / wl[k] + ph[1, k]) for k in range(2))
    pts = np.stack([x, y, z], 1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    s = np.arange(0.0, cfg.length + 1e-9, RING_STEP)
    centre = np.stack([np.interp(s, arc, pts[:, k]) for k in range(3)], 1)
    T = np.gradient(centre, s, axis=0)
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    N = np.zeros_like(T)
    N[0] = np.cross(T[0], [0.0, 1.0, 0.0])
    N[0] /= np.linalg.norm(N[0])
    for k in range(1, len(s)):  # rotation-minimising frame by projection
        n = N[k - 1] - (N[k - 1] @ T[k]) * T[k]
        N[k] = n / np.linalg.norm(n)
    B = np.cross(T, N)

    theta = np.linspace(0.0, 2 * np.pi, SEGMENTS + 1)
    S, TH = np.meshgrid(s, theta, indexing="ij")
    p = rng.uniform(0, 2 * np.pi, 4)
    r = cfg.radius * (1 + 0.12 * np.sin(2 * np.pi * S / 45 + p[0]) + 0.06 * np.sin(2 * np.pi * S / 17 + p[1]))
    r *= 1 + 0.08 * np.cos(2 * TH + p[2] + 0.1 * S)
    fold_s = (
        np.linspace(12.0, cfg.length - 10.0, cfg.folds) + rng.uniform(-2, 2, cfg.folds) if cfg.folds else []
    )
    fold_dip = np.zeros_like(S)
    for sk in fold_s:
        dk = cfg.fold_depth * rng.uniform(0.7, 1.0)
        width = rng.uniform(0.7, 1.1)
        dip = (
            dk
            * np.exp(-0.5 * ((S - sk) / width) ** 2)
            * (0.55 + 0.45 * np.cos(TH - rng.uniform(0, 2 * np.pi)))
        )
        fold_dip = np.maximum(fold_dip, dip)
    r *= 1 - fold_dip
    radial = np.cos(TH)[..., None] * N[:, None] + np.sin(TH)[..., None] * B[:, None]
    grid = centre[:, None] + r[..., None] * radial
    ds = np.gradient(grid, s, axis=0)
    dth = np.gradient(grid, theta, axis=1)
    normals = np.cross(ds, dth)
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    inward = np.sign(np.einsum("ijk,ijk->ij", normals, -radial))[..., None]
    normals *= inward
    normals[:, -1] = normals[:, 0]
    grid[:, -1] = grid[:, 0]
    return Cavity(
        s=s, centre=centre, T=T, N=N, B=B, grid=grid, normals=normals, circumference=2 * np.pi * cfg.radius
    )


def mucosa_texture(rng: np.random.Generator) -> MipTextures:
    """Pink mucosa with a branching vessel network, periodic around the tube."""
    h, w = TEX_HW
    base = np.array([0.86, 0.56, 0.50], np.float32)
    low = 1.0 + 0.10 * fractal_noise(rng, (h, w), 2.8) + 0.05 * fractal_noise(rng, (h, w), 1.4)
    img = base * low[..., None]
    vessels = np.zeros((h, w + 2 * 128), np.float32)  # drawn with a margin, wrapped below

    def branch(x, y, ang, width, steps, depth):
        pts = [(x, y)]
        for _ in range(steps):
            ang += rng.normal(0, 0.22)
            x += 3.0 * np.cos(ang)
            y += 3.0 * np.sin(ang)
            pts.append((x, y))
            if depth < 2 and rng.random() < 0.025:
                branch(
                    x,
                    y,
                    ang + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1),
                    width * 0.65,
                    int(steps * 0.6),
                    depth + 1,
                )
        poly = np.round(np.array(pts) * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(vessels, [poly], False, 1.0, max(1, int(round(width))), cv2.LINE_AA, shift=4)

    for _ in range(55):
        branch(
            rng.uniform(128, w + 128),
            rng.uniform(0, h),
            rng.uniform(0, 2 * np.pi),
            rng.uniform(2.0, 5.0),
            int(rng.uniform(60, 200)),
            0,
        )
    wrapped = vessels[:, 128 : 128 + w].copy()
    wrapped[:, :128] += vessels[:, w + 128 :]
    wrapped[:, w - 128 :] += vessels[:, :128]
    mask = cv2.GaussianBlur(np.clip(wrapped, 0, 1), (0, 0), 0.8)[..., None]
    img = img * (1 - 0.75 * mask) + np.array([0.45, 0.08, 0.10], np.float32) * 0.75 * mask
    spots = np.clip(fractal_noise(rng, (h, w), 1.0, min_period=6.0) - 2.2, 0, 1)[..., None]
    img = img * (1 - spots) + np.array([0.95, 0.85, 0.6], np.float32) * spots
    return MipTextures.build(np.clip(img, 0, 1)[None])


def camera_path(
    rng: np.random.Generator, cavity: Cavity, frames: int, start: float, step: float
) -> np.ndarray:
    """world_from_cam (N, 4, 4) of an endoscope moving along the cavity, looking ahead.

    The camera drifts off the centre line by up to a fifth of the radius, wobbles its view
    direction by a few degrees and rolls slowly, as a hand-held scope does.
    """
    i = np.arange(frames)
    ph = rng.uniform(0, 2 * np.pi, 6)
    s = start + step * (i + 0.15 * np.sin(i / 9.0 + ph[0]) * (frames > 1))
    if s[-1] > cavity.s[-1] - 25.0:
        raise ValueError(
            f"camera path ends at s = {s[-1]:.1f} mm, within 25 mm of the cavity end "
            f"({cavity.s[-1]:.1f} mm): shorten the sequence or lengthen the cavity"
        )
    at = {
        k: np.stack([np.interp(s, cavity.s, v[:, d]) for d in range(3)], 1)
        for k, v in (("c", cavity.centre), ("T", cavity.T), ("N", cavity.N), ("B", cavity.B))
    }
    mean_r = np.linalg.norm(cavity.grid[:, :-1] - cavity.centre[:, None], axis=2).mean()
    off = 0.2 * mean_r * np.sin(i / 23.0 + ph[1])
    ang = ph[2] + i / 30.0
    pos = at["c"] + off[:, None] * (np.cos(ang)[:, None] * at["N"] + np.sin(ang)[:, None] * at["B"])
    yaw = np.deg2rad(6.0) * np.sin(i / 17.0 + ph[3])
    pitch = np.deg2rad(6.0) * np.sin(i / 13.0 + ph[4])
    roll = ph[5] + np.deg2rad(0.4) * i
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for k in range(frames):
        t, n, b = at["T"][k], at["N"][k], at["B"][k]
        z = t + np.tan(yaw[k]) * n + np.tan(pitch[k]) * b
        z /= np.linalg.norm(z)
        x0 = n - (n @ z) * z
        x0 /= np.linalg.norm(x0)
        y0 = np.cross(z, x0)
        x = np.cos(roll[k]) * x0 + np.sin(roll[k]) * y0
        poses[k, :3, :3] = np.stack([x, np.cross(z, x), z], 1)
        poses[k, :3, 3] = pos[k]
    return poses
