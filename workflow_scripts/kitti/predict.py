"""Rule predict_depth: disparities of a test split by a trained stage, in monodepth2's layout.

Output ``results/kitti/pred/<stage>/<split>_disps.npy``: (N, H, W) float32 scaled disparities at
the training size, one per split line in order (monodepth2's ``--ext_disp_to_eval`` format).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from models.inference import predict_batches
from models.model_file import load_model
from models.training.engine import pick_device
from workflow_scripts.kitti.dataset import KittiDataOptions, KittiRawDataset, intrinsics
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.util import save_npy_atomic

__all__ = ["predict_depth", "split_batches"]
log = logging.getLogger(__name__)


def split_batches(split: Path, image_root: Path, raw_root: Path, image_ext: str, hw: tuple[int, int],
                 batch_size: int = 8) -> Iterator[torch.Tensor]:
    """The left frames of a split list at the network size ``hw``, in order: (b, 3, H, W) in [0, 1]."""
    items = read_split(split)
    opts = KittiDataOptions(hw[0], hw[1], augment=False, image_ext=image_ext, cache=False)
    data = KittiRawDataset(image_root, items, intrinsics(raw_root, {i.date for i in items}), opts)
    for s in range(0, len(data), batch_size):
        yield torch.stack([data[i]["color"][0] for i in range(s, min(s + batch_size, len(data)))])


def predict_depth(model_path: Path, split: Path, image_root: Path, raw_root: Path, image_ext: str, out: Path,
                  post_process: bool, threads: int, batch_size: int = 8) -> np.ndarray:
    """Predict every frame of the split list ``split`` with the model file ``model_path`` and
    write ``out`` atomically; returns the (N, H, W) disparities."""
    torch.set_num_threads(max(1, threads))
    net, meta = load_model(model_path)
    hw = (meta["height"], meta["width"])
    batches = split_batches(split, image_root, raw_root, image_ext, hw, batch_size)
    disps = predict_batches(net, batches, pick_device(), min_depth=meta["min_depth"],
                            max_depth=meta["max_depth"], post_process=post_process,
                            kind=meta.get("depth_kind", "disp"))
    save_npy_atomic(out, disps)
    log.info("%s: %d disparities %s from %s", out, len(disps), disps.shape[1:], model_path)
    return disps
