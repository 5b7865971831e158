"""A street-like 3-D scene made of axis-aligned boxes, traffic that moves through it, and a
car trajectory along it.

World frame (metres): x right, y down, z forward along the street; the road surface is the
plane y = 0, so heights above the road are negative y. The rectified camera-0 frame of the
car has the same axes when the car looks straight down the street.

Every box has a Cityscapes class (``LABEL_OF_MATERIAL``: buildings, road, sidewalk,
vegetation, car), so the renderer's label images are exact. Parked cars are static boxes;
moving cars (:class:`Traffic`) are boxes shifted along z at each frame: a car ahead in the
camera's lane at about the camera's speed (it also halts at the standstill), oncoming cars in
the other lane, and optionally a slower van in the lane beside the camera's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workflow_scripts.demo import textures as tx
from workflow_scripts.kitti import cityscapes as cs

# Materials: (tile generator, texel size in metres). Indices are stored per box.
MATERIALS = [
    ("asphalt", tx.asphalt, 0.02),
    ("paving", tx.paving, 0.02),
    ("bricks", tx.bricks, 0.02),
    ("plaster_a", tx.plaster_windows, 0.025),
    ("plaster_b", tx.plaster_windows, 0.025),
    ("foliage", tx.foliage, 0.02),
    ("car", tx.car_paint, 0.0085),
    ("metal", tx.metal, 0.01),
    ("graffiti", tx.graffiti, 0.03),
]
MAT = {name: i for i, (name, _, _) in enumerate(MATERIALS)}
TEXEL_M = np.array([m[2] for m in MATERIALS])
# Cityscapes class of each material (tree trunks are "vegetation" in Cityscapes too)
_CLASS_OF_MATERIAL = {"asphalt": "road", "paving": "sidewalk", "bricks": "building", "plaster_a": "building",
                      "plaster_b": "building", "foliage": "vegetation", "car": "car", "metal": "vegetation",
                      "graffiti": "building"}
LABEL_OF_MATERIAL = np.array([cs.LABEL_IDS[_CLASS_OF_MATERIAL[m[0]]] for m in MATERIALS], np.uint8)
SKY_LABEL = cs.LABEL_IDS["sky"]

ROAD_HALF = 5.5  # road from x = -5.5 to 5.5; parking strips at 3.5..5.3
SIDEWALK = 8.0  # sidewalk from 5.5 to 8.0, buildings behind
CAM_HEIGHT = 1.65  # KITTI camera height above the road
SLOW_X = 0.0  # the slow van's lane centre: beside the camera's (x = 1.8 +- 0.35)
SLOW_SPEED = (0.3, 0.45)  # the slow van's speed, a fraction of the camera's
CROSS_X = 6.0  # crossing cars drive from kerb to kerb: x = -6 to 6 (or back)


def make_textures(rng: np.random.Generator, size: int = 512) -> tx.MipTextures:
    """One tile per material, generated from ``rng``."""
    tiles = np.stack([gen(rng, size) for _, gen, _ in MATERIALS])
    return tx.MipTextures.build(tiles)


@dataclass
class StreetScene:
    """Boxes (M, 2, 3) = min/max corners, material (M,), tint (M, 3), texture offset (M, 2) m,
    and where each box has moved from its texture's frame (M, 3) m: moving boxes carry their
    texture with them."""

    boxes: np.ndarray
    material: np.ndarray
    tint: np.ndarray
    offset: np.ndarray
    moved: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.moved is None:
            self.moved = np.zeros((len(self.boxes), 3))

    @property
    def label(self) -> np.ndarray:
        """(M,) uint8 Cityscapes labelId of each box."""
        return LABEL_OF_MATERIAL[self.material]

    def with_traffic(self, traffic: Traffic, frame: int) -> StreetScene:
        """This scene plus the moving cars at ``frame`` (the moving boxes come last)."""
        shift = traffic.shift[frame]
        return StreetScene(
            boxes=np.concatenate([self.boxes, traffic.boxes + shift[:, None, :]]),
            material=np.concatenate([self.material, np.full(len(traffic.boxes), MAT["car"])]),
            tint=np.concatenate([self.tint, traffic.tint]),
            offset=np.concatenate([self.offset, traffic.offset]),
            moved=np.concatenate([self.moved, shift]),
        )

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """Triangles of all boxes: 12 per box, faces ordered -x, +x, -y, +y, -z, +z
        (triangle k belongs to box k // 12, face (k % 12) // 2), outward winding."""
        lo, hi = self.boxes[:, 0], self.boxes[:, 1]
        corners = np.stack(
            [np.where(np.array([(c >> a) & 1 for a in range(3)], bool), hi, lo) for c in range(8)], axis=1
        )  # (M, 8, 3), corner c: bit a -> hi on axis a
        faces = np.array(
            [
                [0, 4, 6, 0, 6, 2],  # -x (corners with x = lo)
                [1, 3, 7, 1, 7, 5],  # +x
                [0, 1, 5, 0, 5, 4],  # -y
                [2, 6, 7, 2, 7, 3],  # +y
                [0, 2, 3, 0, 3, 1],  # -z
                [4, 5, 7, 4, 7, 6],  # +z
            ]
        ).reshape(6, 2, 3)
        m = len(self.boxes)
        verts = corners.reshape(-1, 3)
        tris = (faces.reshape(1, 12, 3) + 8 * np.arange(m)[:, None, None]).reshape(-1, 3)
        return verts, tris


@dataclass
class Traffic:
    """Moving cars: boxes (K, 2, 3) at their frame-0 positions, tint (K, 3), texture offset
    (K, 2), and their displacement at every frame (N, K, 3) m (two boxes per car, body and
    cabin, move together). ``kind`` (K,) is "lead" (ahead in the camera's lane at 80-90 % of its
    speed), "slow" (a van ahead in the lane beside it at 30-45 %), "oncoming" or "crossing"
    (across the street ahead)."""

    boxes: np.ndarray
    tint: np.ndarray
    offset: np.ndarray
    shift: np.ndarray
    kind: tuple[str, ...]


def _car(x: float, z: float, width: float = 1.8) -> tuple[np.ndarray, np.ndarray]:
    """Body and cabin boxes of a car centred on x, starting at z (length 4.2 m)."""
    half = width / 2
    return (_box(x - half, x + half, -1.0, -0.3, z, z + 4.2),
            _box(x - half + 0.15, x + half - 0.15, -1.5, -1.0, z + 1.0, z + 3.2))


def _van(x: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Body and cab of a van (2 m wide, 2.3 m tall, 5.2 m long) centred on x, starting at z."""
    return (_box(x - 1.0, x + 1.0, -2.3, -0.3, z + 1.2, z + 5.2),
            _box(x - 1.0, x + 1.0, -1.7, -0.3, z, z + 1.2))


def _crossing_car(x: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Body and cabin boxes of a car seen side-on: centred on x, 4.2 m long along x, from z."""
    return (_box(x - 2.1, x + 2.1, -1.0, -0.3, z, z + 1.8),
            _box(x - 1.1, x + 1.1, -1.5, -1.0, z + 0.15, z + 1.65))


def build_traffic(rng: np.random.Generator, cam_z: np.ndarray, fps: float = 10.0,
                  slow_van: bool = False, crossing: bool = False) -> Traffic:
    """Moving cars for a drive whose camera is at ``cam_z`` (N,) m along the street per frame.

    * "lead": a car in the camera's lane (x = 1.8 m), 12-14 m ahead at the start, at 80-90 % of
      the camera's speed (it stops when the camera stops). It sits at the focus of expansion,
      where forward motion gives almost no parallax, and it barely moves in the image, so
      monodepth2's auto-masking (the identity's error is the smallest) drops it from the loss.
    * "slow" (with ``slow_van``): a van in the lane beside the camera's (x = SLOW_X, 1.5-2.3 m
      to its left), 18-22 m ahead, at a fraction r = 30-45 % of the camera's speed, which the
      camera catches up on.
      A pixel u of a static point at depth Z moves u v / Z a second under the camera's forward
      speed v; the van's pixels move u v (1 - r) / Z, like a static point at Z / (1 - r), so the
      static world explains the van 1.4-1.8 times farther away than it is, which is what a
      monocular video loss learns there unless the van is masked (SGDepth). With r < 0.5 the
      warp at the true depth (misaligned by r) beats the identity (misaligned by 1 - r), so
      monodepth2's auto-masking keeps the van in the loss.
    * "oncoming": three cars (x = -2 m) at 7-10 m/s that meet the camera during the drive.
    * "crossing" (with ``crossing``): two cars that cross the street from kerb to kerb
      (x = -/+ 6 m to +/- 6 m) at 6-9 m/s, 22-28 m ahead of the camera when they set off, at
      10-20 % and 50-60 % of the drive; they wait before and stop after. Their motion is
      across the epipolar lines of forward motion, so no depth explains it, and their image
      moves by 14-21 % of their length a frame, which the IoU of SGDepth's warped segmentations
      sees. An along-the-street mover's misalignment against the warp at its true depth is
      ``(lateral offset / width) x |r| x (camera step / depth)`` of its width a frame, a few
      per cent, and a wrong depth explains it away.
    """
    n = len(cam_z)
    t = np.arange(n) / fps
    boxes, tints, shifts, kinds = [], [], [], []

    def along(axis: int, distance: np.ndarray) -> np.ndarray:
        """(N, 3) displacements of ``distance`` (N,) m along ``axis`` (0 = x, 2 = z)."""
        shift = np.zeros((n, 3))
        shift[:, axis] = distance
        return shift

    def add(parts: tuple[np.ndarray, ...], colour: np.ndarray, shift: np.ndarray, kind: str) -> None:
        for part, scale in zip(parts, (1.0, 0.6), strict=True):
            boxes.append(part)
            tints.append(colour * scale)
            shifts.append(shift)
            kinds.append(kind)

    gap, ratio = rng.uniform(12.0, 14.0), rng.uniform(0.8, 0.9)
    add(_car(1.8, cam_z[0] + gap), rng.uniform(0.2, 1.3, 3), along(2, ratio * (cam_z - cam_z[0])), "lead")
    travelled = cam_z[-1] - cam_z[0]
    for k in range(3):  # oncoming: meet the camera at 20 %, 50 %, 80 % of the drive
        speed = rng.uniform(7.0, 10.0)
        t_meet = (0.2 + 0.3 * k) * t[-1]
        z_meet = cam_z[0] + travelled * (0.2 + 0.3 * k)
        z0 = z_meet + speed * t_meet
        add(_car(-2.0, z0), rng.uniform(0.2, 1.3, 3), along(2, -speed * t), "oncoming")
    if slow_van:  # drawn last: without it, the traffic is the same draw for draw
        gap, ratio = rng.uniform(18.0, 22.0), rng.uniform(*SLOW_SPEED)
        van = _van(SLOW_X, cam_z[0] + gap)
        add(van, rng.uniform(0.2, 1.3, 3), along(2, ratio * (cam_z - cam_z[0])), "slow")
    if crossing:  # drawn after the van: the rest of the traffic stays the same draw for draw
        for k, (lo, hi) in enumerate(((0.1, 0.2), (0.5, 0.6))):
            side = 1.0 if k == 0 else -1.0  # the first from the left, the second from the right
            start = int(round(rng.uniform(lo, hi) * (n - 1)))
            speed, gap = rng.uniform(6.0, 9.0), rng.uniform(22.0, 28.0)
            shift = along(0, side * np.clip(speed * (t - t[start]), 0.0, 2 * CROSS_X))
            car = _crossing_car(-side * CROSS_X, cam_z[start] + gap)
            add(car, rng.uniform(0.2, 1.3, 3), shift, "crossing")
    return Traffic(
        boxes=np.stack(boxes),
        tint=np.stack(tints).astype(np.float32),
        offset=rng.uniform(0, 50, (len(boxes), 2)),
        shift=np.stack(shifts, axis=1),
        kind=tuple(kinds),
    )


def _box(x0, x1, y0, y1, z0, z1) -> np.ndarray:
    return np.array([[min(x0, x1), min(y0, y1), min(z0, z1)], [max(x0, x1), max(y0, y1), max(z0, z1)]])


def build_street(rng: np.random.Generator, z_start: float, z_end: float, parked: float = 0.55) -> StreetScene:
    """Road, sidewalks, building blocks with gaps, parked cars, trees, closing walls.

    Args:
        parked: probability of a parked car in each 6-7.5 m slot of the parking strips.
        z_start, z_end: the part of the street the camera drives through (m); the scene
            extends 40 m behind and 160 m ahead so every view ends on geometry or sky.
    """
    z0, z1 = z_start - 40.0, z_end + 160.0
    items: list[tuple[np.ndarray, str, np.ndarray]] = []

    def add(box, mat, tint=None):
        t = np.ones(3) if tint is None else np.asarray(tint, float)
        items.append((box, mat, t))

    add(_box(-150, 150, 0.0, 1.0, z0 - 30, z1 + 30), "asphalt")
    for side in (-1.0, 1.0):
        add(_box(side * ROAD_HALF, side * SIDEWALK, -0.15, 0.0, z0, z1), "paving")
        z = z0
        while z < z1:  # building blocks
            width = rng.uniform(8.0, 22.0)
            if rng.random() < 0.12:  # side street: leave a gap
                z += rng.uniform(10.0, 14.0)
                continue
            setback = rng.uniform(0.0, 2.5)
            height = rng.uniform(7.0, 24.0)
            mat = rng.choice(["bricks", "plaster_a", "plaster_b", "graffiti"])
            x_front = side * (SIDEWALK + setback)
            add(
                _box(x_front, x_front + side * 12.0, -height, 0.0, z, z + width - 0.3),
                mat,
                rng.uniform(0.8, 1.2, 3),
            )
            z += width
        add(
            _box(side * 34.0, side * 46.0, -rng.uniform(15, 30), 0.0, z0, z1),
            "plaster_b",
            rng.uniform(0.7, 1.1, 3),
        )  # row of back buildings, seen through the gaps
        z = z0 + rng.uniform(0, 6)
        while z < z1:  # parked cars
            if rng.random() < parked:
                colour = rng.uniform(0.2, 1.3, 3)
                add(_box(side * 3.6, side * 5.4, -1.0, -0.3, z, z + 4.2), "car", colour)
                add(_box(side * 3.75, side * 5.25, -1.5, -1.0, z + 1.0, z + 3.2), "car", colour * 0.6)
            z += rng.uniform(6.0, 7.5)
        z = z0 + rng.uniform(0, 10)
        while z < z1:  # trees
            if rng.random() < 0.6:
                x = side * rng.uniform(6.3, 7.2)
                add(_box(x - 0.15, x + 0.15, -3.5, 0.0, z - 0.15, z + 0.15), "metal")
                add(_box(x - 1.2, x + 1.2, -5.6, -3.4, z - 1.2, z + 1.2), "foliage", rng.uniform(0.8, 1.2, 3))
            z += rng.uniform(10.0, 16.0)
    add(_box(-60, 60, -35, 0, z1, z1 + 5), "graffiti")  # closing walls
    add(_box(-60, 60, -35, 0, z0 - 5, z0), "bricks")
    boxes = np.stack([b for b, _, _ in items])
    material = np.array([MAT[m] for _, m, _ in items], np.int64)
    tint = np.stack([t for _, _, t in items]).astype(np.float32)
    offset = rng.uniform(0, 50, (len(items), 2))
    return StreetScene(boxes=boxes, material=material, tint=tint, offset=offset)


def rotation_ypr(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation of a camera (x right, y down, z forward): yaw about y (towards +x),
    then pitch about x (positive = looking down, as y points down), then roll about z; radians."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


def trajectory(
    rng: np.random.Generator, frames: int, speed: float, stop: bool, fps: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Poses of the rectified camera 0 while driving down the street.

    The car weaves gently in its lane (yaw follows the path), pitches slightly, and with
    ``stop`` brakes to a halt for about a second in the middle of the drive.

    Returns:
        world_from_cam0: (N, 4, 4) float64; times: (N,) seconds from the first frame.
    """
    t = np.arange(frames) / fps
    v = np.full(frames, speed)
    if stop:
        mid, half = 0.5 * t[-1], 0.12 * t[-1] + 0.5
        v = speed * np.clip(np.abs(t - mid) / half, 0.0, 1.0) ** 2
        v[np.abs(t - mid) < 0.5] = 0.0  # standing still
    z = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) / fps)])
    phase, wl = rng.uniform(0, 2 * np.pi), rng.uniform(50.0, 80.0)
    x = 1.8 + 0.35 * np.sin(2 * np.pi * z / wl + phase)
    dxdz = 0.35 * 2 * np.pi / wl * np.cos(2 * np.pi * z / wl + phase)
    yaw = np.arctan(dxdz) + np.deg2rad(0.4) * np.sin(0.7 * t + phase)
    pitch = np.deg2rad(0.4) * np.sin(1.3 * t + 2 * phase)
    roll = np.deg2rad(0.2) * np.sin(0.9 * t + 3 * phase)
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        poses[i, :3, :3] = rotation_ypr(yaw[i], pitch[i], roll[i])
        poses[i, :3, 3] = (x[i], -CAM_HEIGHT, z[i])
    return poses, t
