"""Rule predict_pose: the relative poses of a KITTI odometry sequence by a stage's pose network.

Frames are read as the training reads them (complete-file check, ``cv2.INTER_AREA`` resize to the
model's training size, RGB in [0, 1]) and fed in temporal order ``(frame k, frame k+1)``, as
monodepth2's ``evaluate_pose.py`` and the training's ``pose(target, frame +1)`` do; the 6-vector
becomes ``next_from_this`` with the network's own convention (``PoseNet.to_matrix``, no inverse).

Output ``results/kitti/pose/<stage>/<seq>.npz``: ``next_from_this`` (N-1, 4, 4) float64, its
translation in the network's unit (training units; with a stereo baseline of 0.1, x5.4 is metric
on KITTI), ``vectors`` (N-1, 6) the raw network output, ``frames`` (N,) int64 frame numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from models.model_file import load_model, read_model_meta
from models.networks.pose_net import PoseNet
from models.training.engine import pick_device
from workflow_scripts.kitti.dataset import images_to_tensor
from workflow_scripts.kitti.pose_eval import check_pose_count, read_poses, sequence_images
from workflow_scripts.util import InputDataError, atomic_file
from workflow_scripts.util.images import read_image

__all__ = ["load_pose_network", "load_frame", "predict_relative_poses", "predict_sequence_poses"]
log = logging.getLogger(__name__)


def load_pose_network(model_path: str | Path, stage: str) -> tuple[PoseNet, dict]:
    """The pose network of a stage's ``model.pt`` (eval mode, CPU) and the model's metadata.

    Raises:
        InputDataError: the model has no pose network (a stage that trains depth only).
    """
    meta = read_model_meta(model_path)
    if not meta.get("pose"):
        raise InputDataError(
            model_path, f"stage {stage} has no pose network (it trained without temporal frames)",
            "list only stages with a pose network in kitti.pose_eval.stages: finetune, or a teacher trained "
            "with frame_ids [0, -1, 1]")
    net, meta = load_model(model_path, "pose")
    return net, meta


def load_frame(path: Path, hw: tuple[int, int]) -> np.ndarray:
    """One frame as the training loader prepares it: (H, W, 3) uint8 RGB at ``hw`` = (H, W) px."""
    img = read_image(path, fix="replace the frame (re-download or re-extract the sequence)")
    img = cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)[..., ::-1]
    return np.ascontiguousarray(img)


@torch.no_grad()
def predict_relative_poses(net: PoseNet, images: list[Path], hw: tuple[int, int], device: torch.device,
                           batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``next_from_this`` (N-1, 4, 4) float64 and the network's 6-vectors (N-1, 6) of the
    consecutive pairs of ``images`` (N paths), streamed ``batch_size`` pairs at a time."""
    net = net.to(device)
    mats, vecs = [], []
    for start in range(0, len(images) - 1, batch_size):
        stop = min(start + batch_size, len(images) - 1)
        frames = images_to_tensor([load_frame(p, hw) for p in images[start:stop + 1]]).to(device)
        vec = net(frames[:-1], frames[1:])
        mats.append(net.to_matrix(vec).double().cpu().numpy())
        vecs.append(vec.double().cpu().numpy())
    return np.concatenate(mats), np.concatenate(vecs)


def predict_sequence_poses(model_path: str | Path, stage: str, root: str | Path, sequence: str,
                           out: str | Path, threads: int = 1, batch_size: int = 16) -> np.ndarray:
    """Predict the relative poses of ``<root>/sequences/<sequence>`` with the pose network of
    ``model_path`` and write ``out`` (npz, see the module doc) atomically; returns ``next_from_this``.

    The sequence's pose file is checked first (one pose per image), so that a bad sequence fails
    before the network runs.
    """
    torch.set_num_threads(max(1, threads))
    images = sequence_images(root, sequence)
    if len(images) < 2:
        raise InputDataError(images[0].parent, "holds one frame: poses need pairs", "use a longer sequence")
    poses_path = Path(root) / "poses" / f"{sequence}.txt"
    check_pose_count(poses_path, len(read_poses(poses_path)), len(images), images[0].parent)
    net, meta = load_pose_network(model_path, stage)
    hw = (int(meta["height"]), int(meta["width"]))
    rel, vecs = predict_relative_poses(net, images, hw, pick_device(), batch_size)
    with atomic_file(out) as tmp:
        np.savez(tmp, next_from_this=rel, vectors=vecs, frames=np.array([int(p.stem) for p in images]))
    step = np.linalg.norm(rel[:, :3, 3], axis=1)
    log.info("%s: %d pairs of sequence %s at %dx%d, translation per frame %.4g +- %.2g (network units)",
             out, len(rel), sequence, hw[0], hw[1], step.mean(), step.std())
    return rel
