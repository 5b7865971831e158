"""Procedural, periodic textures and a mip-mapped sampler for the demo renderers.

Textures are fixed to surfaces (sampled by surface coordinates, not by pixel), so a surface
point looks the same from every frame and from both cameras. Sampling is trilinear over a
mip pyramid: the level follows the pixel footprint on the surface, so far or grazing
surfaces do not alias (aliasing would flicker between frames and break photometric
consistency).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.0,
                  min_period: float = 2.0) -> np.ndarray:
    """Periodic 1/f^beta noise (zero mean, unit std) on a grid of ``shape`` texels.

    Built in the Fourier domain, so it tiles seamlessly. ``min_period`` (texels) removes
    detail finer than that.
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    amp = np.where(f > 0, np.maximum(f, 1.0 / max(h, w)) ** (-beta / 2.0), 0.0)
    amp[f > 1.0 / min_period] = 0.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) * amp
    noise = np.fft.irfft2(spec, s=(h, w))
    return ((noise - noise.mean()) / (noise.std() + 1e-12)).astype(np.float32)


def _rgb(base: tuple[float, float, float], gray: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32)[None, None, :] * gray[..., None], 0.0, 1.0)


def asphalt(rng: np.random.Generator, size: int) -> np.ndarray:
    n = fractal_noise(rng, (size, size), 1.2) * 0.10 + fractal_noise(rng, (size, size), 2.6) * 0.08
    speck = (rng.random((size, size)) > 0.985) * 0.25
    return _rgb((0.36, 0.36, 0.38), 1.0 + n + speck.astype(np.float32))


def paving(rng: np.random.Generator, size: int, slab: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    groove = ((x % slab) < 2) | ((y % slab) < 2)
    per_slab = rng.normal(0, 0.06, (size // slab + 1, size // slab + 1))[y // slab, x // slab]
    g = 1.0 + per_slab + fractal_noise(rng, (size, size), 1.5) * 0.07 - groove * 0.35
    return _rgb((0.62, 0.60, 0.56), g)


def bricks(rng: np.random.Generator, size: int, bw: int = 16, bh: int = 8) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    row = y // bh
    xs = (x + (row % 2) * (bw // 2)) % size
    col = xs // bw
    mortar = ((xs % bw) < 2) | ((y % bh) < 2)
    tone = rng.normal(0, 0.12, (size // bh + 1, size // bw + 2))[row, col]
    g = 1.0 + tone + fractal_noise(rng, (size, size), 2.0) * 0.05
    base = np.array([0.62, 0.30, 0.22], np.float32)
    img = np.clip(base * g[..., None], 0, 1)
    img[mortar] = 0.72 + 0.05 * rng.standard_normal((int(mortar.sum()), 1))
    return img.astype(np.float32)


def plaster_windows(rng: np.random.Generator, size: int, period: int = 128) -> np.ndarray:
    """Rendered plaster with a grid of framed windows every ``period`` texels."""
    colour = rng.uniform(0.55, 0.85, 3).astype(np.float32)
    img = _rgb(tuple(colour), 1.0 + fractal_noise(rng, (size, size), 1.8) * 0.08)
    y, x = np.mgrid[0:size, 0:size]
    u, v = x % period, y % period
    frame = (u > period * 0.22) & (u < period * 0.78) & (v > period * 0.18) & (v < period * 0.82)
    glass = (u > period * 0.26) & (u < period * 0.74) & (v > period * 0.22) & (v < period * 0.78)
    reflect = 0.15 + 0.25 * (v / period) + 0.06 * fractal_noise(rng, (size, size), 2.5)
    img[frame] = 0.9
    img[glass] = np.stack([reflect * 0.8, reflect * 0.9, reflect * 1.1], -1)[glass]
    return np.clip(img, 0, 1).astype(np.float32)


def foliage(rng: np.random.Generator, size: int) -> np.ndarray:
    n = fractal_noise(rng, (size, size), 1.0, min_period=3.0)
    g = np.clip(0.8 + 0.45 * n, 0.2, 1.6)
    return _rgb((0.22, 0.42, 0.16), g)


def car_paint(rng: np.random.Generator, size: int) -> np.ndarray:
    """Painted panels with seams, road dirt and dark decals (lights, plates, trim): enough
    texture for stereo matching on a car's flat faces, as on real cars."""
    y, x = np.mgrid[0:size, 0:size]
    panel = ((x % (size // 8)) < 3) | ((y % (size // 4)) < 3)
    dirt = fractal_noise(rng, (size, size), 1.8)
    decals = fractal_noise(rng, (size, size), 2.8, min_period=6.0) > 1.2
    g = 1.0 + dirt * 0.15 - panel * 0.45 - decals * 0.5
    return _rgb((0.75, 0.75, 0.78), g)


def metal(rng: np.random.Generator, size: int) -> np.ndarray:
    g = 1.0 + fractal_noise(rng, (size, size), 1.6) * 0.12
    return _rgb((0.45, 0.45, 0.47), g)


def graffiti(rng: np.random.Generator, size: int) -> np.ndarray:
    """Weathered, painted concrete: a grey base with muted colour blotches."""
    grey = 1.0 + fractal_noise(rng, (size, size), 1.7) * 0.12
    chans = [fractal_noise(rng, (size, size), 3.0) for _ in range(3)]
    img = np.array([0.55, 0.53, 0.50], np.float32) * grey[..., None] + np.stack(chans, -1) * 0.07
    return np.clip(img, 0, 1).astype(np.float32)


@dataclass
class MipTextures:
    """A stack of equally sized periodic RGB tiles with a mip pyramid.

    Attributes:
        levels: per level an atlas (n_tiles * (h_L + 2 pad), w_L + 2 pad, 3) float32; the
            tiles are stacked vertically, each padded with ``pad`` wrapped texels.
        tile_hw: (h, w) of one tile at level 0 (texels).
        pad: wrapped border width of every tile at every level.
    """

    levels: list[np.ndarray]
    tile_hw: tuple[int, int]
    pad: int

    @classmethod
    def build(cls, tiles: np.ndarray, pad: int = 2) -> MipTextures:
        """Build the pyramid of tiles (M, h, w, 3) in [0, 1]; h and w powers of two times
        an odd number; levels stop when a side would drop below 4 texels."""
        tiles = np.asarray(tiles, np.float32)
        m, h, w, _ = tiles.shape
        levels = []
        cur = tiles
        while True:
            padded = np.pad(cur, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="wrap")
            levels.append(np.ascontiguousarray(padded.reshape(-1, padded.shape[2], 3)))
            if cur.shape[1] % 2 or cur.shape[2] % 2 or min(cur.shape[1:3]) < 8:
                break
            cur = 0.25 * (cur[:, 0::2, 0::2] + cur[:, 1::2, 0::2] + cur[:, 0::2, 1::2] + cur[:, 1::2, 1::2])
        return cls(levels=levels, tile_hw=(h, w), pad=pad)

    def sample(self, tile: np.ndarray, s: np.ndarray, t: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Trilinear lookup.

        Args:
            tile: (N,) int tile index.
            s, t: (N,) float texel coordinates at level 0 (horizontal, vertical); wrapped.
            level: (N,) float mip level (log2 of the footprint in level-0 texels).
        Returns:
            (N, 3) float32 RGB in [0, 1].
        """
        n = tile.shape[0]
        out = np.zeros((n, 3), np.float32)
        if n == 0:
            return out
        top = len(self.levels) - 1
        lev = np.clip(level, 0.0, float(top))
        l0 = lev.astype(np.uint8)  # floor; small ints sort in linear time (radix)
        order = np.argsort(l0, kind="stable")
        l0s, frac = l0[order], (lev[order] - l0[order]).astype(np.float32)[:, None]
        tile_s, s_s, t_s = tile[order], s[order], t[order]
        bounds = np.searchsorted(l0s, np.arange(top + 2))
        res = np.empty((n, 3), np.float32)
        for L in range(top + 1):
            a, b = bounds[L], bounds[L + 1]
            if a == b:
                continue
            c0 = self._lookup(L, tile_s[a:b], s_s[a:b], t_s[a:b])
            c1 = self._lookup(L + 1, tile_s[a:b], s_s[a:b], t_s[a:b]) if L < top else c0
            res[a:b] = c0 + frac[a:b] * (c1 - c0)
        out[order] = res
        return out

    def _lookup(self, L: int, tile: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        h, w = self.tile_hw[0] >> L, self.tile_hw[1] >> L
        scale = float(2**L)
        # texel i of level L covers [i, i+1) * 2^L in level-0 units; its centre is at i + 0.5
        x = np.mod(s / scale - 0.5, w) + self.pad
        y = np.mod(t / scale - 0.5, h) + self.pad + tile * (h + 2 * self.pad)
        return remap_points(self.levels[L], x, y)


def remap_points(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (H, W, C) at float pixel positions (N,) -> (N, C).

    Uses cv2.remap on a (rows, 1024) reshaped map (cv2 limits map sides to 32767).
    """
    n = x.shape[0]
    cols = 1024
    rows = -(-n // cols)
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n] = x
    my[:n] = y
    out = cv2.remap(image, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * cols, -1)[:n]
