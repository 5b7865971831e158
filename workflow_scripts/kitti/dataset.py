"""KITTI raw training data: split lines -> frames, stereo pair, depth hints, intrinsics.

A split line is ``<date>/<date>_drive_<id>_sync <frame> <l|r>`` (monodepth2 format, read by
:func:`workflow_scripts.kitti.split_files.read_split`). An item holds the target frame
(``frame_ids`` 0), its temporal neighbours (e.g. -1, +1) and, with ``stereo``, the other camera
of the rig, all resized to the training resolution. The batches are what the objectives of
``models.training.kitti_objectives`` take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from models.augment import Jitter, color_jitter
from workflow_scripts.kitti.calib import load_rig
from workflow_scripts.kitti.raw import SIDE_TO_CAM, image_path
from workflow_scripts.kitti.split_files import SplitLine
from workflow_scripts.util import InputDataError
from workflow_scripts.util.images import read_image

__all__ = [
    "KittiDataOptions",
    "KittiRawDataset",
    "hint_folders",
    "images_to_tensor",
    "intrinsics",
    "network_image",
]


def network_image(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """A decoded frame (h0, w0, 3) uint8 BGR -> (height, width, 3) uint8 RGB at the network size (area
    resize): what training, the test-split prediction and ``predict_images`` feed the networks."""
    return np.ascontiguousarray(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)[..., ::-1])


def images_to_tensor(images: list[np.ndarray]) -> Tensor:
    """Images (H, W, 3) uint8 RGB of one size -> (F, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def intrinsics(raw_root: Path, dates: set[str]) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    """date -> (0-based K (3, 3) of the rectified left camera, native (H, W)) from the
    calibration of each date under ``raw_root``."""
    out = {}
    for date in sorted(dates):
        rig = load_rig(Path(raw_root) / date)
        out[date] = (rig.K(2, zero_based=True), rig.image_size[2])
    return out


def hint_folders(hint_dirs: list[Path]) -> dict[str, Path]:
    """Drive folder ``<date>/<drive>`` -> its depth-hint folder, from the hint folders of the
    rule's inputs (``.../depth_hints/<date>/<drive>``)."""
    return {f"{Path(d).parent.name}/{Path(d).name}": Path(d) for d in hint_dirs}


@dataclass(frozen=True)
class KittiDataOptions:
    """What an item contains.

    Attributes:
        height, width: training resolution (pixels).
        frame_ids: temporal offsets, 0 first (e.g. (0, -1, 1)).
        stereo: add the other camera of the rig (key "stereo").
        hints: drive folder ``<date>/<drive>`` -> its depth-hint folder (``image_0X/<frame>.npy``
            inside); None = no hints.
        stereo_baseline: baseline used for ``stereo_T`` in training units; 0.1 as monodepth2
            (predictions are then metric after x (true baseline / 0.1) = x5.4 on KITTI).
        augment: random horizontal flip and colour jitter (training only).
        image_ext: "png" (KITTI raw) or "jpg" (after the JPEG conversion).
    """

    height: int
    width: int
    frame_ids: tuple[int, ...] = (0,)
    stereo: bool = False
    hints: dict[str, Path] | None = None
    stereo_baseline: float = 0.1
    augment: bool = True
    image_ext: str = "png"
    cache: bool = True


@dataclass
class KittiRawDataset(Dataset):
    """Items for self-supervised training on KITTI raw drives.

    Args:
        root: KITTI raw root.
        items: split lines.
        intrinsics: date -> (K (3, 3) 0-based pixels at native size, (H0, W0)) for the left
            camera (KITTI's rectified cameras 2 and 3 share K).
    Returns per item (dict of tensors):
        "color" (F, 3, H, W) in [0, 1], frames in ``frame_ids`` order then the stereo frame;
        "color_aug" the same after colour jitter (feed the networks); "K", "inv_K" (3, 3)
        at training resolution; "stereo_T" (4, 4) other_from_this; "hint" (1, H, W) depth
        in training units (0 = none) and "hint_mask"; "index".
    """

    root: Path
    items: list[SplitLine]
    intrinsics: dict[str, tuple[np.ndarray, tuple[int, int]]]
    opts: KittiDataOptions
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def _image(self, folder: str, cam: int, frame: int) -> np.ndarray:
        key = (folder, cam, frame)
        if key in self._cache:
            return self._cache[key]
        path = image_path(Path(self.root) / folder, cam, frame, self.opts.image_ext)
        img = read_image(path, fix="check the split list and kitti.root")
        img = network_image(img, self.opts.height, self.opts.width)
        if self.opts.cache:
            self._cache[key] = img
        return img

    def _hint(self, folder: str, cam: int, frame: int) -> np.ndarray:
        if folder not in self.opts.hints:
            raise InputDataError(self.root / folder, "no depth-hint folder among the stage's inputs",
                                 "re-run precompute_depth_hints for this drive")
        path = self.opts.hints[folder] / f"image_0{cam}" / f"{frame:010d}.npy"
        hint = np.load(path, allow_pickle=False)
        hint = hint[0] if hint.ndim == 3 else hint
        return cv2.resize(hint.astype(np.float32), (self.opts.width, self.opts.height),
                          interpolation=cv2.INTER_NEAREST)

    def K_at_training_size(self, date: str) -> np.ndarray:
        """(3, 3) intrinsics after resizing native images to (height, width): pixel centres
        map as x' = (x + 0.5) * sx - 0.5."""
        K0, (h0, w0) = self.intrinsics[date]
        sx, sy = self.opts.width / w0, self.opts.height / h0
        K = K0.astype(np.float64).copy()
        K[0, 0], K[1, 1] = K0[0, 0] * sx, K0[1, 1] * sy
        K[0, 2], K[1, 2] = (K0[0, 2] + 0.5) * sx - 0.5, (K0[1, 2] + 0.5) * sy - 0.5
        return K

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        """``key`` = item index, or ``(draw, index)`` where ``draw`` seeds the augmentation
        (the training loop passes the global step, so runs repeat exactly after a resume and
        whatever the number of loader workers)."""
        draw, index = key if isinstance(key, tuple) else (0, key)
        item = self.items[index]
        rng = np.random.default_rng([self.seed, draw, index])
        flip = self.opts.augment and rng.random() < 0.5
        cam = SIDE_TO_CAM[item.side]
        frames = [self._image(item.folder, cam, item.frame + f) for f in self.opts.frame_ids]
        if self.opts.stereo:
            frames.append(self._image(item.folder, 5 - cam, item.frame))
        color = images_to_tensor(frames)
        K = self.K_at_training_size(item.date)
        if flip:
            color = color.flip(-1)
            K[0, 2] = self.opts.width - 1 - K[0, 2]
        jitter = Jitter.draw(rng) if self.opts.augment and rng.random() < 0.5 else Jitter()
        out = {"color": color, "color_aug": color_jitter(color, jitter),
               "K": torch.from_numpy(K).float(), "inv_K": torch.from_numpy(np.linalg.inv(K)).float(),
               "index": torch.tensor(index), "side": torch.tensor(cam)}
        side_sign = -1.0 if item.side == "l" else 1.0  # the other camera: right of 'l', left of 'r'
        stereo_T = torch.eye(4)
        stereo_T[0, 3] = side_sign * (-1.0 if flip else 1.0) * self.opts.stereo_baseline
        out["stereo_T"] = stereo_T
        if self.opts.hints is not None:
            hint = self._hint(item.folder, cam, item.frame)
            hint = torch.from_numpy(np.ascontiguousarray(hint[:, ::-1] if flip else hint))[None]
            out["hint"], out["hint_mask"] = hint, (hint > 0).float()
        return out
