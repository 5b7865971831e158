"""Semantic evaluation of the driving branch (SGDepth, seed_methods §6.8, §7.4).

* :func:`export_test_labels`: the trainIds of every test frame, from a Cityscapes-format folder
  whose cities are drive folders (the demo writes its drives so), into
  ``results/kitti/gt/<split>_labels.npz`` (key ``l<i>``: (H, W) uint8 trainIds of line i).
* :func:`predict_segmentation`: a stage's class ids of the test frames, (N, h, w) uint8 at the
  network size (``results/kitti/pred/<stage>/<split>_seg.npy``).
* :func:`seg_eval_table`: ``results/kitti_seg_eval.csv``: per stage the mIoU over the classes
  that occur in the test labels or the predictions (Cityscapes' mean over classes of
  ``TP / (TP + FP + FN)``, pixels of ignored labels excluded), the pixel accuracy and the IoU of
  every class; a ``majority`` row predicts the most frequent test class everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from models.model_file import load_model
from models.training.engine import pick_device
from workflow_scripts.kitti import cityscapes as cs
from workflow_scripts.kitti.predict import split_batches
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.util import InputDataError, atomic_file, save_npy_atomic

__all__ = ["export_test_labels", "load_test_labels", "predict_segmentation", "confusion", "seg_eval_table"]
log = logging.getLogger(__name__)
N_CLASSES = len(cs.TRAIN_CLASSES)


def _label_file(root: Path, drive: str, frame: int) -> Path:
    stem = f"{drive}_{frame:010d}_gtFine_labelIds.png"
    found = sorted((root / "gtFine").glob(f"*/{drive}/{stem}"))
    if not found:
        raise InputDataError(root / "gtFine" / "<split>" / drive / stem, "no label image for this test frame",
                             "label every frame of the test split (Cityscapes layout, city = drive folder), "
                             "or leave kitti.evaluate.labels empty")
    return found[0]


def export_test_labels(split: Path, root: Path, out: Path) -> int:
    """Write the trainIds of every line of the test list ``split`` (left images) to ``out``."""
    arrays = {}
    for i, item in enumerate(read_split(split)):
        path = _label_file(root, Path(item.folder).name, item.frame)
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if label is None or label.ndim != 2 or label.dtype != np.uint8:
            raise InputDataError(path, "is not a single-channel 8-bit labelIds PNG",
                                 "use the *_labelIds.png files")
        arrays[f"l{i:05d}"] = cs.label_ids_to_train_ids(label)
    with atomic_file(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return len(arrays)


def load_test_labels(path: Path) -> list[np.ndarray]:
    """The (H, W) uint8 trainIds of the test frames, in split order."""
    with np.load(path, allow_pickle=False) as data:
        return [data[k] for k in sorted(data.files)]


def predict_segmentation(model_path: Path, split: Path, image_root: Path, raw_root: Path, image_ext: str,
                         out: Path, threads: int, batch_size: int = 8) -> np.ndarray:
    """Class ids (N, h, w) uint8 of the test frames by a model with a segmentation head."""
    torch.set_num_threads(max(1, threads))
    net, meta = load_model(model_path)
    if not getattr(net, "has_segmentation", False):
        raise ValueError(f"{model_path}: the model has no segmentation head")
    device = pick_device()
    net.to(device).eval()
    preds = []
    with torch.no_grad():
        for images in split_batches(split, image_root, raw_root, image_ext, (meta["height"], meta["width"]),
                                   batch_size):
            preds.append(net.segment(images.to(device)).argmax(1).to(torch.uint8).cpu().numpy())
    seg = np.concatenate(preds)
    save_npy_atomic(out, seg)
    return seg


def confusion(labels: list[np.ndarray], preds: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """(C, C) pixel counts [true, predicted] over images; predictions (h, w) are resized to each
    label's size by nearest neighbour; ignored label pixels (255) are left out."""
    conf = np.zeros((N_CLASSES, N_CLASSES), np.int64)
    for label, pred in zip(labels, preds, strict=True):
        h, w = label.shape
        p = cv2.resize(np.asarray(pred, np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        keep = label < N_CLASSES
        conf += np.bincount(label[keep].astype(np.int64) * N_CLASSES + p[keep], minlength=N_CLASSES**2
                            ).reshape(N_CLASSES, N_CLASSES)
    return conf


def _row(stage: str, conf: np.ndarray) -> dict:
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    return {"stage": stage, "miou": float(np.nanmean(iou)), "pixel_accuracy": float(tp.sum() / conf.sum()),
            "n_classes": int(np.isfinite(iou).sum()),
            **{f"iou_{name.replace(' ', '_')}": float(v)
               for name, v in zip(cs.TRAIN_CLASSES, iou, strict=True)}}


def seg_eval_table(labels: list[np.ndarray], preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows of results/kitti_seg_eval.csv: each stage's predictions and the majority baseline."""
    counts = sum(np.bincount(lab[lab < N_CLASSES], minlength=N_CLASSES) for lab in labels)
    majority = [np.full((8, 8), int(np.argmax(counts)), np.uint8) for _ in labels]
    rows = [_row(stage, confusion(labels, p)) for stage, p in preds.items()]
    rows.append(_row("majority", confusion(labels, majority)))
    return pd.DataFrame(rows)
