"""Write synthetic drives in the exact KITTI raw layout (see ``workflow_scripts.kitti.raw``).

Per date: ``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt``, ``calib_imu_to_velo.txt``.
Per drive, besides the KITTI raw folders, ground truth for tests and evaluation:

* ``proj_depth/groundtruth/image_0{2,3}/<frame>.png``: dense z-depth, uint16 = metres x 256,
  0 = no surface (sky), in the layout of KITTI's annotated depth maps.
* ``demo_gt/poses.npz``: ``cam2_from_world``, ``cam3_from_world``, ``velo_from_world``
  (N, 4, 4) and ``times`` (N,) seconds.
* ``demo_gt/cars.npz``: the car boxes in world coordinates (min/max corners, m): ``parked``
  (P, 2, 3) and ``moving`` (N, K, 2, 3) per frame, with ``moving_kind`` (K,) "lead", "oncoming",
  "slow" or "crossing".

Beside the drives, ``cityscapes/`` holds the left images (hard links) with their exact
semantic labels in the Cityscapes layout (:mod:`workflow_scripts.kitti.cityscapes`), city =
drive folder: ``cityscapes/leftImg8bit/train/<drive>/<drive>_<frame>_leftImg8bit.png`` and
``cityscapes/gtFine/train/<drive>/<drive>_<frame>_gtFine_labelIds.png``. Every drive is in the
``train`` folder; the workflow keeps the test drives out of training.

The images are rendered in the rectified frame with the calibration read back from the
written files, so the files and the pixels agree to the printed precision.
"""

from __future__ import annotations

import logging
from dataclasses import MISSING, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.demo.kitti_render import StreetRenderer
from workflow_scripts.demo.kitti_scene import (
    MAT,
    StreetScene,
    Traffic,
    build_street,
    build_traffic,
    make_textures,
    rotation_ypr,
    trajectory,
)
from workflow_scripts.demo.textures import MipTextures
from workflow_scripts.kitti import calib as kc
from workflow_scripts.kitti import cityscapes as cs
from workflow_scripts.kitti import raw
from workflow_scripts.util import atomic_dir
from workflow_scripts.util.options import option
from workflow_scripts.util.pool import map_in_processes

log = logging.getLogger(__name__)
DEPTH_PNG_SCALE = 256.0  # KITTI annotated depth: uint16 = metres * 256
CITYSCAPES = "cityscapes"  # folder of the labelled left images, inside the demo root


@dataclass(frozen=True, kw_only=True)
class DemoDrive:
    """One demo drive (frames at 10 Hz)."""

    date: str = option(
        MISSING, "Recording date, one of demo.kitti.dates.", pattern="^[0-9]{4}_[0-9]{2}_[0-9]{2}$"
    )
    drive: str = option(MISSING, "Drive id (4 digits).", pattern="^[0-9]{4}$")
    frames: int = option(60, "Frames of the drive.", minimum=3)
    speed: float = option(8.0, "Speed (m/s).", exclusiveMinimum=0)
    stop: bool = option(
        False, "Brake to a halt for a few frames and drive on (frame filtering must drop them)."
    )


def _demo_drives() -> tuple[DemoDrive, ...]:
    return (
        DemoDrive(date="2011_01_01", drive="0001", frames=32, speed=8.0, stop=False),
        DemoDrive(date="2011_01_01", drive="0002", frames=32, speed=7.0, stop=True),
        DemoDrive(date="2011_01_02", drive="0003", frames=24, speed=9.0, stop=False),
    )


@dataclass(frozen=True, kw_only=True)
class KittiDemoConfig:
    """Synthetic KITTI raw drives (rule make_demo_kitti), used when kitti.root is empty: a street
    of textured buildings, parked cars and trees, seen by a rectified stereo rig and a Velodyne
    HDL-64E."""

    root: str = option("resources/demo/kitti_raw", "Where the synthetic KITTI-raw tree is written.")
    dates: dict[str, tuple[int, int]] = option(
        factory=lambda: {"2011_01_01": (188, 621), "2011_01_02": (185, 613)},
        doc="Image size [height, width] per recording date. Half of real KITTI's (375x1242 on "
        "2011_09_26, 370x1226 on 2011_09_28): a quarter of the rays to cast, and the demo trains at "
        "64x192 and computes hints at 160x512 anyway. The sizes differ between dates, as on KITTI.",
        minProperties=1,
        propertyNames={"pattern": "^[0-9]{4}_[0-9]{2}_[0-9]{2}$"},
    )
    drives: tuple[DemoDrive, ...] = option(factory=_demo_drives, doc="The drives.", minItems=1)
    test_drives: tuple[str, ...] = option(
        ("2011_01_02/2011_01_02_drive_0003_sync",),
        "The held-out test drives (the date with the other image "
        "size); their frames are the demo's test split.",
        minItems=1,
        items={"type": "string", "pattern": "^([0-9]{4}_[0-9]{2}_[0-9]{2})/\\1_drive_[0-9]{4}_sync$"},
    )
    test_stride: int = option(1, "Stride over the test drives' frames.", minimum=1)
    baseline: float = option(
        0.54, "Stereo baseline between image_02 and image_03 (m; KITTI: 0.54).", exclusiveMinimum=0
    )
    focal: float = option(
        721.5377,
        "Focal length (pixels) for a 1242-pixel-wide image (KITTI: 721.5); scaled with the width.",
        exclusiveMinimum=0,
    )
    traffic: bool = option(
        True,
        "Moving cars: one ahead in the camera's lane at 80-90 % of its speed, three oncoming (the "
        "static-world assumption of self-supervised depth fails on them; SGDepth masks them).",
    )
    slow_van: bool = option(
        False,
        "With traffic, also a van ahead in the lane beside the camera's at 30-45 % of its speed: off the "
        "focus of expansion, not auto-masked, and 1.4-1.8x farther in a static world "
        "(config/demo_sgdepth.yaml; docs/driving.md).",
    )
    crossing: bool = option(
        False,
        "With traffic, also two cars that cross the street ahead (across the epipolar lines of forward "
        "motion: no depth explains them; config/demo_sgdepth.yaml; docs/driving.md).",
    )
    parked_cars: float = option(
        0.35, "Probability of a parked car in each 6-7.5 m slot along the kerbs.", minimum=0, maximum=1
    )
    image_noise: float = option(
        1.0, "Standard deviation of the Gaussian sensor noise (8-bit levels).", minimum=0
    )
    lidar_beams: int = option(64, "Simulated Velodyne: beams.", minimum=1)
    lidar_azimuth_steps: int = option(
        1000,
        "Simulated Velodyne: samples per revolution (the real sensor: about "
        "2000; 1000 halves the size of the scans).",
        minimum=16,
    )
    lidar_max_range: float = option(120.0, "Simulated Velodyne: maximum range (m).", exclusiveMinimum=0)
    lidar_range_noise: float = option(
        0.0,
        "Simulated Velodyne: range noise standard deviation (m; 0 = exact points, which the tests rely on).",
        minimum=0,
    )


def demo_calibration(hw: tuple[int, int], focal_1242: float, baseline: float) -> dict[str, dict]:
    """KITTI-like calibration entries of one date for rectified images of size ``hw``.

    Camera 2 sits 6 cm left of camera 0 and camera 3 ``baseline`` to the right of camera 2,
    as on the KITTI rig. The Velodyne is 8 cm above and 27 cm behind camera 0.
    """
    h, w = hw
    f = focal_1242 * w / 1242.0
    cx, cy = 0.49079 * w, 0.46094 * h
    offsets = {0: 0.0, 1: -baseline, 2: 0.06, 3: 0.06 - baseline}  # x_cam = x_rect0 + offset
    R_rect_00 = rotation_ypr(np.deg2rad(0.45), np.deg2rad(-0.25), np.deg2rad(0.15))
    base = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # cam axes in velo axes
    rect_from_velo = np.eye(4)
    rect_from_velo[:3, :3] = rotation_ypr(np.deg2rad(0.3), np.deg2rad(-0.4), 0.0) @ base
    rect_from_velo[:3, 3] = (0.0, -0.08, -0.27)
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = R_rect_00.T
    velo_to_cam = velo_to_cam @ rect_from_velo
    c2c: dict = {"calib_time": "01-Jan-2011 00:00:00", "corner_dist": 9.95e-02}
    for cam in range(4):
        K_raw = np.array([[f * 1.33, 0, 696.0], [0, f * 1.33, 240.0], [0, 0, 1]])
        c2c[f"S_0{cam}"] = np.array([1392.0, 512.0])
        c2c[f"K_0{cam}"] = K_raw
        c2c[f"D_0{cam}"] = np.zeros(5)
        c2c[f"R_0{cam}"] = np.eye(3)
        c2c[f"T_0{cam}"] = np.array([-offsets[cam], 0.0, 0.0])
        c2c[f"S_rect_0{cam}"] = np.array([float(w), float(h)])
        c2c[f"R_rect_0{cam}"] = R_rect_00 if cam == 0 else np.eye(3)
        c2c[f"P_rect_0{cam}"] = np.array([[f, 0, cx, f * offsets[cam]], [0, f, cy, 0], [0, 0, 1, 0]])
    v2c = {
        "calib_time": "01-Jan-2011 00:00:00",
        "R": velo_to_cam[:3, :3],
        "T": velo_to_cam[:3, 3],
        "delta_f": np.zeros(2),
        "delta_c": np.zeros(2),
    }
    i2v = {"calib_time": "01-Jan-2011 00:00:00", "R": np.eye(3), "T": np.array([-0.81, 0.32, -0.80])}
    return {kc.CAM_TO_CAM: c2c, kc.VELO_TO_CAM: v2c, kc.IMU_TO_VELO: i2v}


@dataclass
class _DriveJob:
    path: Path
    scene: StreetScene
    traffic: Traffic | None
    rig: kc.KittiRig
    world_from_rect0: np.ndarray  # (N, 4, 4)
    seed: int


_JOBS: dict[int, _DriveJob] = {}
_TEXTURES: MipTextures | None = None
_CFG: KittiDemoConfig | None = None
_RENDERERS: dict[int, StreetRenderer] = {}
_THREADS = 0  # Embree threads per ray cast: 1 in each of several worker processes


def _cam_pose(job: _DriveJob, i: int, cam: int) -> np.ndarray:
    """world_from_cam of rectified camera ``cam`` at frame ``i``."""
    rect0_from_cam = np.eye(4)
    rect0_from_cam[:3, 3] = -job.rig.cam_offset(cam)
    return job.world_from_rect0[i] @ rect0_from_cam


def _render_frame(task: tuple[int, int]) -> int:
    """Render and write one frame of one drive (runs in a worker process)."""
    key, i = task
    job, cfg = _JOBS[key], _CFG
    if key not in _RENDERERS:  # Embree scenes are built after the fork, never shared
        _RENDERERS[key] = StreetRenderer(job.scene, _TEXTURES, threads=_THREADS)
    renderer = _RENDERERS[key]
    if job.traffic is not None:
        renderer.set_scene(job.scene.with_traffic(job.traffic, i))
    rng = np.random.default_rng([job.seed, i])
    name = raw.frame_name(i)
    for cam in (2, 3):
        rgb, depth, label = renderer.render(
            _cam_pose(job, i, cam), job.rig.K(cam, zero_based=False), job.rig.image_size[cam], one_based=True
        )
        img = np.clip(
            rgb * 255.0 + cfg.image_noise * rng.standard_normal(rgb.shape, dtype=np.float32), 0, 255
        )
        cv2.imwrite(
            str(raw.image_path(job.path, cam, i)),
            cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_PNG_COMPRESSION, 1],
        )
        if cam == 2:
            city = job.path.name
            image, label_png = cs.cityscapes_paths(job.path.parent.parent / CITYSCAPES, "train", city,
                                                   f"{city}_{name}")
            cs.write_label_png(label_png, label)
            image.parent.mkdir(parents=True, exist_ok=True)
            image.unlink(missing_ok=True)
            image.hardlink_to(raw.image_path(job.path, cam, i))
        d16 = np.round(depth * DEPTH_PNG_SCALE)
        d16[(d16 > 65535) | (depth <= 0)] = 0
        cv2.imwrite(
            str(job.path / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{name}.png"),
            d16.astype(np.uint16),
            [cv2.IMWRITE_PNG_COMPRESSION, 1],
        )
    world_from_velo = job.world_from_rect0[i] @ job.rig.rect_from_velo()
    pts = renderer.lidar(
        world_from_velo,
        cfg.lidar_beams,
        cfg.lidar_azimuth_steps,
        cfg.lidar_max_range,
        cfg.lidar_range_noise,
        rng,
    )
    pts.tofile(raw.velodyne_path(job.path, i))
    return i


def _save_cars(path: Path, scene: StreetScene, traffic: Traffic | None, frames: int) -> None:
    """The car boxes of a drive (``demo_gt/cars.npz``, see the module doc)."""
    moving = np.zeros((frames, 0, 2, 3))
    kind = np.array([], dtype="<U8")
    if traffic is not None:
        moving, kind = traffic.boxes[None] + traffic.shift[:, :, None], np.array(traffic.kind)
    np.savez(path, parked=scene.boxes[scene.material == MAT["car"]], moving=moving, moving_kind=kind)


def generate(out_root: str | Path, cfg: KittiDemoConfig, seed: int, workers: int = 1) -> dict:
    """Generate every demo drive under ``out_root`` (written atomically as one folder).

    Returns:
        summary: drive name -> number of frames, plus image sizes per date.
    """
    global _TEXTURES, _CFG, _THREADS
    rng = np.random.default_rng(seed)
    _TEXTURES, _CFG, _THREADS = make_textures(rng), cfg, (1 if workers > 1 else 0)
    _JOBS.clear()
    _RENDERERS.clear()
    summary: dict = {"dates": {}, "drives": {}}
    with atomic_dir(out_root) as tmp:
        rigs = {}
        for date, hw in cfg.dates.items():
            for fname, entries in demo_calibration(hw, cfg.focal, cfg.baseline).items():
                kc.write_calib_file(tmp / date / fname, entries)
            rigs[date] = kc.load_rig(tmp / date)  # render with exactly what was written
            summary["dates"][date] = list(hw)
        for key, d in enumerate(cfg.drives):
            if d.date not in rigs:
                raise ValueError(
                    f"demo.kitti.drives: drive {d.drive} uses date {d.date}, "
                    f"which is not listed in demo.kitti.dates"
                )
            drive_rng = np.random.default_rng([seed, key])
            poses, times = trajectory(drive_rng, d.frames, d.speed, d.stop)
            scene = build_street(drive_rng, -5.0, poses[-1, 2, 3] + 5.0, parked=cfg.parked_cars)
            traffic = None
            if cfg.traffic:
                cam_z = poses[:, 2, 3]
                traffic = build_traffic(drive_rng, cam_z, slow_van=cfg.slow_van, crossing=cfg.crossing)
            path = raw.drive_dir(tmp, d.date, d.drive)
            for sub in (
                "image_02/data",
                "image_03/data",
                "velodyne_points/data",
                "proj_depth/groundtruth/image_02",
                "proj_depth/groundtruth/image_03",
                "demo_gt",
            ):
                (path / sub).mkdir(parents=True, exist_ok=True)
            start = datetime(2011, 1, 1, 12, 0, 0) + timedelta(hours=key)
            for sub in ("image_02", "image_03", "velodyne_points"):
                raw.write_timestamps(path / sub / "timestamps.txt", start, times)
            raw.write_timestamps(path / "velodyne_points" / "timestamps_start.txt", start, times - 0.05)
            raw.write_timestamps(path / "velodyne_points" / "timestamps_end.txt", start, times + 0.05)
            job = _DriveJob(path=path, scene=scene, traffic=traffic, rig=rigs[d.date], world_from_rect0=poses,
                            seed=seed * 1000 + key)
            _save_cars(path / "demo_gt" / "cars.npz", scene, traffic, d.frames)
            _JOBS[key] = job
            inv = np.linalg.inv
            np.savez(
                path / "demo_gt" / "poses.npz",
                times=times,
                cam2_from_world=np.stack([inv(_cam_pose(job, i, 2)) for i in range(d.frames)]),
                cam3_from_world=np.stack([inv(_cam_pose(job, i, 3)) for i in range(d.frames)]),
                velo_from_world=np.stack([inv(p @ job.rig.rect_from_velo()) for p in poses]),
            )
            summary["drives"][path.name] = d.frames
        tasks = [(k, i) for k, d in enumerate(cfg.drives) for i in range(d.frames)]
        if workers > 1:
            done = map_in_processes(_render_frame, tasks, workers, context="fork", ordered=False)
            for n, _ in enumerate(done, 1):
                if n % 20 == 0 or n == len(tasks):
                    log.info("rendered %d/%d frames", n, len(tasks))
        else:
            for task in tasks:
                _render_frame(task)
    _RENDERERS.clear()
    return summary
