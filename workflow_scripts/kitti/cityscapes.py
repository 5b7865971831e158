"""Cityscapes-format semantic labels for SGDepth-style segmentation training.

Folder layout (the official Cityscapes one; any number of cities per split)::

    <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png          RGB image
    <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png           uint8, one labelId per pixel

Label convention: the PNGs hold Cityscapes *labelIds* 0..33 (cityscapesScripts ``labels.py``);
training uses the 19 *trainIds* 0..18 of :data:`TRAIN_CLASSES`, every other labelId becomes
:data:`IGNORE` (255), which the loss skips. The colour ``*_gtFine_color.png`` images are not
labels. TrainIds 11..18 (:data:`MOVABLE_TRAIN_IDS`: people and vehicles) are the classes that
SGDepth masks out of the photometric loss.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from workflow_scripts.util import InputDataError, atomic_file
from workflow_scripts.util.images import read_image

__all__ = ["IGNORE", "LABEL_IDS", "LABELS", "MOVABLE_TRAIN_IDS", "TRAIN_CLASSES", "CityscapesDataset",
           "WithLabelledImages", "class_frequencies", "cityscapes_paths", "find_pairs",
           "label_ids_to_train_ids", "training_pairs", "write_label_png"]

IGNORE = 255
# labelId -> (name, trainId): the official cityscapesScripts table (license plate, id -1, left out)
LABELS: dict[int, tuple[str, int]] = {
    0: ("unlabeled", IGNORE), 1: ("ego vehicle", IGNORE), 2: ("rectification border", IGNORE),
    3: ("out of roi", IGNORE), 4: ("static", IGNORE), 5: ("dynamic", IGNORE), 6: ("ground", IGNORE),
    7: ("road", 0), 8: ("sidewalk", 1), 9: ("parking", IGNORE), 10: ("rail track", IGNORE),
    11: ("building", 2), 12: ("wall", 3), 13: ("fence", 4), 14: ("guard rail", IGNORE),
    15: ("bridge", IGNORE), 16: ("tunnel", IGNORE), 17: ("pole", 5), 18: ("polegroup", IGNORE),
    19: ("traffic light", 6), 20: ("traffic sign", 7), 21: ("vegetation", 8), 22: ("terrain", 9),
    23: ("sky", 10), 24: ("person", 11), 25: ("rider", 12), 26: ("car", 13), 27: ("truck", 14),
    28: ("bus", 15), 29: ("caravan", IGNORE), 30: ("trailer", IGNORE), 31: ("train", 16),
    32: ("motorcycle", 17), 33: ("bicycle", 18),
}
LABEL_IDS: dict[str, int] = {name: label_id for label_id, (name, _) in LABELS.items()}
TRAIN_CLASSES: tuple[str, ...] = tuple(name for name, t in sorted(LABELS.values(), key=lambda v: v[1])
                                       if t != IGNORE)
MOVABLE_TRAIN_IDS: tuple[int, ...] = tuple(range(11, 19))  # SGDepth: trainId > 10 (and < 100)

_LUT = np.full(256, IGNORE, np.uint8)
for _label_id, (_, _train_id) in LABELS.items():
    _LUT[_label_id] = _train_id

IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"
_LAYOUT = (f"expected leftImg8bit/<split>/<city>/*{IMAGE_SUFFIX} and "
           f"gtFine/<split>/<city>/*{LABEL_SUFFIX} under the root")


def label_ids_to_train_ids(labels: np.ndarray) -> np.ndarray:
    """Map Cityscapes labelIds to trainIds (same shape, uint8; unknown ids and ignored classes
    -> :data:`IGNORE`)."""
    if labels.dtype != np.uint8:
        raise ValueError(f"labelIds must be uint8, got {labels.dtype}")
    return _LUT[labels]


def cityscapes_paths(root: Path, split: str, city: str, stem: str) -> tuple[Path, Path]:
    """(image, label) paths of ``stem`` (e.g. ``aachen_000000_000019``) in the layout above."""
    root = Path(root)
    return (root / "leftImg8bit" / split / city / f"{stem}{IMAGE_SUFFIX}",
            root / "gtFine" / split / city / f"{stem}{LABEL_SUFFIX}")


def find_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """Every (image, labelIds PNG) pair of ``split`` under ``root``, sorted by city then stem.

    Raises:
        InputDataError: ``root`` or ``leftImg8bit/<split>`` is missing, the split has no images,
            or an image has no label file (the missing path is named).
    """
    root = Path(root)
    image_dir = root / "leftImg8bit" / split
    if not root.is_dir():
        raise InputDataError(root, "folder not found: not a Cityscapes-format folder",
                             f"{_LAYOUT}; check the path")
    if not image_dir.is_dir():
        raise InputDataError(image_dir, f"missing, so {root} is not a Cityscapes-format folder for split "
                             f"'{split}'", f"{_LAYOUT}; check the root and the split name")
    images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise InputDataError(image_dir, f"contains no <city>/*{IMAGE_SUFFIX} images", _LAYOUT)
    pairs = []
    for image in images:
        _, label = cityscapes_paths(root, split, image.parent.name, image.name[: -len(IMAGE_SUFFIX)])
        if not label.is_file():
            raise InputDataError(image, f"has no label file {label}",
                                 f"add the labelIds PNG ({_LAYOUT}) or remove the image")
        pairs.append((image, label))
    return pairs


def _read_label(path: Path) -> np.ndarray:
    """(H, W) uint8 labelIds of a label PNG; colour or 16-bit images are errors."""
    fix = f"use the *{LABEL_SUFFIX} files (single-channel 8-bit Cityscapes labelIds)"
    label = read_image(path, cv2.IMREAD_UNCHANGED, fix=fix)
    if label.ndim == 3 and label.shape[2] == 1:
        label = label[..., 0]
    if label.ndim != 2:
        raise InputDataError(path, f"is a {label.shape[2]}-channel (colour) image; colour images are "
                             "not labelIds", fix)
    if label.dtype != np.uint8:
        raise InputDataError(path, f"has {label.dtype} pixels, not 8-bit labelIds", fix)
    return label


def _resize_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize (h, w, 3) to ``hw``: area averaging when shrinking, bilinear when enlarging."""
    if image.shape[:2] == tuple(hw):
        return image
    enlarge = hw[0] > image.shape[0] or hw[1] > image.shape[1]
    return cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR if enlarge else cv2.INTER_AREA)


def _nearest_index(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each output pixel: the pixel under its centre, (x + 0.5) * n_in / n_out,
    in exact integer arithmetic."""
    return (2 * np.arange(n_out) + 1) * n_in // (2 * n_out)


def _resize_label(label: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ids (never interpolated), pixel-centre aligned like the image
    resize. cv2.INTER_NEAREST samples at x * n_in / n_out instead, up to half a source pixel off
    the image; INTER_NEAREST_EXACT is centre-aligned but rounds ties in fixed point."""
    if label.shape[:2] == tuple(hw):
        return label
    return label[np.ix_(_nearest_index(hw[0], label.shape[0]), _nearest_index(hw[1], label.shape[1]))]


class CityscapesDataset(Dataset):
    """Labelled images for semantic-segmentation training.

    Args:
        pairs: (image, labelIds PNG) paths, e.g. from :func:`find_pairs`.
        size: (H, W) of the items, pixels.
        augment: random horizontal flip (p 0.5) and SGDepth's scale-crop (resize to a random
            scale in [1, 1.5] x ``size``, then a random ``size`` crop), image and label aligned.
        seed: seeds the augmentation together with the draw and the index.
    Returns per item: "image" float32 (3, H, W) RGB in [0, 1]; "label" int64 (H, W) trainIds
    (:data:`IGNORE` = 255 for ignored pixels).
    """

    def __init__(self, pairs: list[tuple[Path, Path]], size: tuple[int, int], *, augment: bool,
                 seed: int) -> None:
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with positive entries, got {size}")
        self.pairs = [(Path(image), Path(label)) for image, label in pairs]
        self.size = (int(size[0]), int(size[1]))
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        """``key`` = item index, or ``(draw, index)`` where ``draw`` (the training loop's global
        step) seeds the augmentation, so that runs repeat exactly."""
        draw, index = key if isinstance(key, tuple) else (0, key)
        image_path, label_path = self.pairs[index]
        bgr = read_image(image_path, fix="replace the image or remove it from the Cityscapes folder")
        label = _read_label(label_path)
        if bgr.shape[:2] != label.shape:
            raise InputDataError(label_path, f"is {label.shape[1]}x{label.shape[0]} pixels but its image "
                                 f"{image_path} is {bgr.shape[1]}x{bgr.shape[0]}",
                                 "use the label file that belongs to the image")
        rgb, train_ids = bgr[..., ::-1], label_ids_to_train_ids(label)
        h, w = self.size
        if self.augment:
            rng = np.random.default_rng([self.seed, draw, index])
            flip = rng.random() < 0.5
            scale = rng.uniform(1.0, 1.5)
            hs, ws = max(h, round(h * scale)), max(w, round(w * scale))
            top, left = int(rng.integers(0, hs - h + 1)), int(rng.integers(0, ws - w + 1))
            rgb = _resize_image(np.ascontiguousarray(rgb), (hs, ws))[top: top + h, left: left + w]
            train_ids = _resize_label(train_ids, (hs, ws))[top: top + h, left: left + w]
            if flip:
                rgb, train_ids = rgb[:, ::-1], train_ids[:, ::-1]
        else:
            rgb = _resize_image(np.ascontiguousarray(rgb), (h, w))
            train_ids = _resize_label(train_ids, (h, w))
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
        return {"image": image, "label": torch.from_numpy(np.ascontiguousarray(train_ids)).long()}


def class_frequencies(pairs: list[tuple[Path, Path]], max_images: int = 500) -> np.ndarray:
    """Pixel frequencies (19,) of the trainIds in the labels of ``pairs`` (ignored pixels not
    counted), from at most ``max_images`` evenly spaced labels (a large set's frequencies are
    known well from a few hundred)."""
    if not pairs:
        raise ValueError("no labelled images to count classes in")
    take = np.unique(np.linspace(0, len(pairs) - 1, min(len(pairs), max_images)).round().astype(int))
    counts = np.zeros(len(TRAIN_CLASSES), dtype=np.int64)
    for k in take:
        ids = label_ids_to_train_ids(_read_label(pairs[k][1]))
        counts += np.bincount(ids[ids != IGNORE].ravel(), minlength=len(TRAIN_CLASSES))[: len(TRAIN_CLASSES)]
    if counts.sum() == 0:
        raise InputDataError(pairs[take[0]][1].parent, "the labels hold no pixel of the 19 training classes",
                             "check that the gtFine files are labelIds, not trainIds or colour images")
    return counts / counts.sum()


def write_label_png(path: Path, label_ids: np.ndarray) -> None:
    """Write (H, W) uint8 labelIds as a single-channel PNG, atomically (a temporary .png beside
    ``path``, then a rename); creates the parent folder."""
    if label_ids.dtype != np.uint8 or label_ids.ndim != 2:
        raise ValueError(f"labelIds must be a uint8 (H, W) array, got {label_ids.dtype} {label_ids.shape}")
    with atomic_file(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(label_ids)):
            raise OSError(f"cv2 could not write {tmp}")


_KITTI_DRIVE = re.compile(r"^\d{4}_\d{2}_\d{2}_drive_\d{4}_sync$")


def training_pairs(root: Path, split: str, train_drives: set[str]) -> list[tuple[Path, Path]]:
    """The labelled pairs a training stage may use: every pair of ``split``, except those of
    cities named like a KITTI drive (the demo writes its drives as cities) that are not among
    ``train_drives`` (drive folder names): the test drives' labels never train."""
    pairs = [(i, lab) for i, lab in find_pairs(root, split)
             if not _KITTI_DRIVE.match(i.parent.name) or i.parent.name in train_drives]
    if not pairs:
        raise InputDataError(root, f"holds no labelled image of split {split!r} outside the test drives",
                             "add labelled training images (Cityscapes layout) or point "
                             "kitti.train.common.labels to another folder")
    return pairs


class WithLabelledImages(Dataset):
    """Items of a depth dataset, each with one labelled image besides (SGDepth's joint batches of
    depth and segmentation): ``seg_image`` (3, H, W) and ``seg_label`` (H, W) of the labelled item
    drawn from ``(seed, draw, index)``, so that runs stay step-deterministic."""

    def __init__(self, depth: Dataset, labelled: CityscapesDataset, seed: int) -> None:
        self.depth, self.labelled, self.seed = depth, labelled, seed

    def __len__(self) -> int:
        return len(self.depth)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        draw, index = key if isinstance(key, tuple) else (0, key)
        item = dict(self.depth[key])
        j = int(np.random.default_rng([self.seed, draw, index, 7]).integers(len(self.labelled)))
        seg = self.labelled[(draw, j)]
        item["seg_image"], item["seg_label"] = seg["image"], seg["label"]
        return item
