"""Validation of a driving stage on the val list (results/kitti/splits/val_files.txt).

The Eigen depth metrics (median scaling, Garg crop, depths 1e-3 .. 80 m: the evaluation's
monodepth2 protocol) of the depth network on up to ``val_frames`` evenly spaced lines of the val
list. Ground truth per frame: KITTI's annotated depth map where the raw tree has one
(``proj_depth/groundtruth``, which the demo writes for every frame), else the frame's Velodyne scan
projected as the eigen split's ground truth (:func:`workflow_scripts.kitti.gt_depth.velodyne_gt`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import geometry as G
from workflow_scripts.kitti import calib as kc
from workflow_scripts.kitti import gt_depth as gd
from workflow_scripts.kitti.dataset import KittiDataOptions, KittiRawDataset, intrinsics
from workflow_scripts.kitti.evaluate import METRICS, EvalOptions, constant_disparities, evaluate_split
from workflow_scripts.kitti.raw import velodyne_path
from workflow_scripts.kitti.split_files import SplitLine, read_split
from workflow_scripts.util import InputDataError

__all__ = ["ValSet", "constant_baseline", "load_val_set", "validate_depth"]

log = logging.getLogger(__name__)

MAX_MODE = ("a1", "a2", "a3")  # accuracies: larger is better
VAL_EVAL = EvalOptions(min_depth=1e-3, max_depth=80.0, crop="garg", scaling="median")


class ValSet:
    """Val images (N, 3, H, W) uint8 at the network size and their ground truth (N maps (H0, W0)
    metres, 0 = none)."""

    def __init__(self, images: torch.Tensor, gts: list[np.ndarray], lines: list[SplitLine]) -> None:
        self.images, self.gts, self.lines = images, gts, lines


def _ground_truth(raw_root: Path, line: SplitLine, rigs: dict) -> np.ndarray:
    drive = raw_root / line.folder
    png = gd.groundtruth_png_path(drive, line.frame, line.cam)
    if png.is_file():
        return gd.png_depth_map(png)
    velo = velodyne_path(drive, line.frame)
    if not velo.is_file():
        raise InputDataError(velo, "a val frame has neither an annotated depth map nor a Velodyne scan",
                             "set kitti.train.common.val_every to 0 (no validation) or fix the val list")
    date = line.folder.split("/")[0]
    if date not in rigs:
        rigs[date] = kc.load_rig(raw_root / date)
    index, values = gd.velodyne_gt(velo, rigs[date], gd.GtOptions(cam=line.cam))
    return gd.densify(index, values, rigs[date].image_size[line.cam])


def load_val_set(split: Path, image_root: Path, raw_root: Path, image_ext: str, hw: tuple[int, int],
                 max_frames: int) -> ValSet | None:
    """The val frames of ``split`` (at most ``max_frames``, evenly spaced); None for an empty list."""
    lines = read_split(split)
    if not lines:
        return None
    take = np.unique(np.linspace(0, len(lines) - 1, min(len(lines), max_frames)).round().astype(int))
    lines = [lines[k] for k in take]
    opts = KittiDataOptions(hw[0], hw[1], augment=False, image_ext=image_ext, cache=False)
    data = KittiRawDataset(image_root, lines, intrinsics(raw_root, {i.date for i in lines}), opts)
    images = torch.stack([(data[i]["color"][0] * 255).round().to(torch.uint8) for i in range(len(data))])
    rigs: dict = {}
    gts = [_ground_truth(raw_root, line, rigs) for line in lines]
    log.info("validation: %d frames of %s", len(lines), split)
    return ValSet(images, gts, lines)


def validate_depth(nets: nn.ModuleDict, val: ValSet, min_depth: float, max_depth: float,
                   batch_size: int = 8) -> dict[str, float]:
    """The mean Eigen metrics (median scaling) of ``nets["depth"]`` on ``val``."""
    net = nets["depth"]
    device = next(net.parameters()).device
    disps = []
    for s in range(0, len(val.images), batch_size):
        batch = val.images[s: s + batch_size].to(device).float() / 255.0
        with torch.no_grad():
            disp = net(batch)[0].float()
        disps.extend(G.disp_to_depth(disp, min_depth, max_depth)[0][:, 0].cpu().numpy())
    means, _ = evaluate_split(val.gts, disps, VAL_EVAL)
    return {m: means[m] for m in METRICS}


def constant_baseline(val: ValSet) -> dict[str, float]:
    """The Eigen metrics of a constant depth on ``val`` (median scaling: the evaluation's
    ``constant`` row), what a stage that learnt depth beats."""
    means, _ = evaluate_split(val.gts, constant_disparities(len(val.gts)), VAL_EVAL)
    return {m: means[m] for m in METRICS}
