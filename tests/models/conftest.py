"""Fixtures of the models tests: demo frames with exact depth and poses, as tensors."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from workflow_scripts.demo import endo_demo
from workflow_scripts.demo.endo_render import CavityRenderer
from workflow_scripts.demo.endo_scene import build_cavity, camera_path, mucosa_texture
from workflow_scripts.kitti import calib as kc
from workflow_scripts.kitti import raw
from workflow_scripts.util.options import load_options


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tensors here are small, and on a busy 2-core machine OpenMP
    barriers between two threads made tiny-tensor tests (gradcheck) 10x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@dataclass
class KittiDrive:
    """One demo drive: calibration, GT poses and readers of images / depth as tensors."""

    path: object
    rig: kc.KittiRig
    poses: dict

    def image(self, cam: int, i: int, hw: tuple[int, int] | None = None) -> torch.Tensor:
        """(1, 3, H, W) float32 RGB in [0, 1]; area-resized to ``hw`` if given."""
        im = cv2.imread(str(raw.image_path(self.path, cam, i)))[..., ::-1].astype(np.float32) / 255.0
        if hw is not None:
            im = cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None]

    def depth(self, cam: int, i: int, hw: tuple[int, int] | None = None) -> torch.Tensor:
        """(1, 1, H, W) GT z-depth in metres, 0 = sky. Resized by area averaging of depth and of
        inverse depth: where the two disagree the footprint straddles an edge and is set to 0."""
        png = self.path / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{raw.frame_name(i)}.png"
        z = cv2.imread(str(png), cv2.IMREAD_UNCHANGED).astype(np.float32) / 256.0
        if hw is not None:
            zz = np.where(z > 0, z, 1e6).astype(np.float32)
            a = cv2.resize(zz, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
            b = 1.0 / cv2.resize(1.0 / zz, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
            z = np.where((np.abs(a - b) < 2e-3 * b) & (b < 1e5), b, 0.0).astype(np.float32)
        return torch.from_numpy(z)[None, None]

    def src_from_tgt(self, tgt: tuple[int, int], src: tuple[int, int]) -> torch.Tensor:
        """(1, 4, 4) pose of camera/frame ``tgt`` = (cam, i) in the frame of ``src``, from GT."""
        c_t, i = tgt
        c_s, j = src
        T = self.poses[f"cam{c_s}_from_world"][j] @ np.linalg.inv(self.poses[f"cam{c_t}_from_world"][i])
        return torch.from_numpy(T).float()[None]


@pytest.fixture(scope="session")
def kitti_drive(kitti_demo_small) -> KittiDrive:
    root = kitti_demo_small["root"]
    date, drive = "2011_01_01", "0001"
    path = raw.drive_dir(root, date, drive)
    poses = dict(np.load(path / "demo_gt" / "poses.npz"))
    return KittiDrive(path=path, rig=kc.load_rig(root / date), poses=poses)


@dataclass
class EndoPair:
    """Two ideal pinhole views of the demo cavity (mm), exact depth, K and cam_from_world."""

    images: list[torch.Tensor]  # (1, 3, H, W) float64
    depths: list[torch.Tensor]  # (1, 1, H, W) float64 mm
    K: torch.Tensor  # (1, 3, 3) float64
    cam_from_world: list[np.ndarray]

    def cam2_from_cam1(self) -> torch.Tensor:
        return torch.from_numpy(self.cam_from_world[1] @ np.linalg.inv(self.cam_from_world[0]))[None]


@pytest.fixture(scope="session")
def endo_pair(default_config) -> EndoPair:
    """Frames 0 and 3 (0.9 mm apart) of the demo camera path through the default demo cavity,
    rendered undistorted at 192x256 with an off-centre principal point."""
    cfg = load_options(endo_demo.EndoDemoConfig, copy.deepcopy(default_config["demo"]["endoscopy"]))
    seed = default_config["seed"]
    rng = np.random.default_rng([seed, 7])  # as endo_demo.generate
    cavity = build_cavity(rng, cfg.cavity)
    texture = mucosa_texture(rng)
    poses = camera_path(np.random.default_rng([seed, 7, 0]), cavity, 4, 6.0, 0.3)[[0, 3]]
    renderer = CavityRenderer(cavity, texture, cfg.light, cfg.specular)
    h, w = 192, 256
    K = np.array([[130.0, 0.0, 0.47 * (w - 1)], [0.0, 130.0, 0.53 * (h - 1)], [0.0, 0.0, 1.0]])
    images, depths = [], []
    for pose in poses:
        rgb, depth = renderer.render(pose, None, K=K, hw=(h, w))
        images.append(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float64)).permute(2, 0, 1)[None])
        depths.append(torch.from_numpy(depth)[None, None])
    return EndoPair(images, depths, torch.from_numpy(K)[None], [np.linalg.inv(p) for p in poses])
