"""Endoscopy training data: frame pairs of SfM-reconstructed sequences (seed_methods §1.4-1.6).

One :class:`EndoSequence` per sequence holds its ``sfm_data.npz`` (rule prepare_sfm_data) and its
frames ``<index:08d>.jpg``, loaded as the reference feeds them (``load_network_image``: resize
1/downsampling, crop) and then, if the training size differs from the network size of sfm_data,
resized once more (area) with the intrinsics following exactly (pixel centres at integers:
``c' = (c + 1/2) s - 1/2``). Sparse samples are re-rasterised at the training size from the SfM
points (round, inside the image, on the mask, last point wins) as the reference does at its size;
at the network size of sfm_data this reproduces sfm_data's own samples.

:class:`EndoPairDataset` draws, like the reference's ``SfMDataset.__getitem__``, a second frame
``a .. b`` views away from the item's frame (``adjacent_range``; towards the inside near the ends,
random direction elsewhere) and returns sparse depths, sparse flows and the relative pose of the
pair. Items are keyed ``(draw, index)``; every random choice comes from ``(seed, draw, index)``,
so the engine's step-deterministic batches repeat exactly after a resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from models.augment import Jitter, color_jitter
from workflow_scripts.endo.sfm_data import frame_sparse_points, load_network_image
from workflow_scripts.endo.sparse import (
    load_sfm_data,
    rasterise_sparse_depth,
    rasterise_sparse_flow,
    relative_motion,
)
from workflow_scripts.util import InputDataError

__all__ = ["EndoDataOptions", "EndoSequence", "EndoPairDataset", "training_intrinsics", "boundary_mask",
           "training_views"]

BOUNDARY = 0.9  # the reference's boundary mask: mask / 255 > 0.9


def training_intrinsics(K: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """(3, 3) intrinsics after resizing an image of ``src_hw`` to ``dst_hw`` (pixel centres at
    integers): ``f' = f s``, ``c' = (c + 1/2) s - 1/2`` per axis."""
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    out = np.array(K, np.float64, copy=True)
    out[0, 0], out[1, 1] = K[0, 0] * sx, K[1, 1] * sy
    out[0, 2], out[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
    return out


def boundary_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The field-of-view mask (h, w) uint8 (255 = valid) at ``hw`` as (H, W) uint8 {0, 255}:
    area-resized, then ``> 0.9 * 255`` (the reference's boundary threshold)."""
    if tuple(mask.shape) != tuple(hw):
        mask = cv2.resize(mask, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return np.where(mask > BOUNDARY * 255, 255, 0).astype(np.uint8)


@dataclass(frozen=True)
class EndoDataOptions:
    """What the items hold.

    Attributes:
        size: training (height, width); None = the network size of sfm_data (input_size).
        adjacent_range: (a, b) views between the two frames of a pair (reference: 5 30);
            capped by the sequence's visibility window, so both frames share sparse points.
        augment: independent colour jitter of each frame (``color_aug``; the losses use the
            networks' outputs only, the unaugmented ``color`` serves the teacher of the student).
        max_flow: normalised sparse flows beyond this in either component are masked (reference 5).
        items_per_epoch: length of the dataset (the reference's ``num_iter``); 0 = one item per
            training view of all sequences.
        val_fraction: share of each sequence's views, the last ones, that no pair uses (they are
            the validation views, :func:`training_views`); 0 = every view trains.
    """

    size: tuple[int, int] | None = None
    adjacent_range: tuple[int, int] = (5, 30)
    augment: bool = True
    max_flow: float = 5.0
    items_per_epoch: int = 0
    val_fraction: float = 0.0


def training_views(n_views: int, val_fraction: float) -> int:
    """How many of a sequence's ``n_views`` registered views (the first ones) train when
    ``val_fraction`` of them, the last ones, are held out: ``n - ceil(fraction n)``, at least two
    (fewer views: all train and none validate); ``n`` for a fraction of 0."""
    if val_fraction <= 0 or n_views <= 2:
        return n_views
    return max(2, n_views - max(1, int(np.ceil(val_fraction * n_views))))


class EndoSequence:
    """One sequence at the training size: images, K, boundary mask, per-view sparse samples.

    Attributes:
        name: sequence name; data: the sfm_data arrays; hw: training (H, W).
        images: (V, H, W, 3) uint8 RGB of the registered views (rows of cam_from_world).
        K: (3, 3) float64 at the training size; mask: (H, W) uint8 {0, 255}.
        samples: per view (point ids (M,), pixels (M, 2) int32 (x, y), camera z (M,) SfM units).
    """

    def __init__(
        self, name: str, sfm_data: str | Path, frames_dir: str | Path, size: tuple[int, int] | None = None
    ) -> None:
        self.name, self.path = name, Path(sfm_data)
        self.data = load_sfm_data(self.path)
        d = self.data
        src = tuple(int(s) for s in d["input_size"])
        self.hw = tuple(size) if size else src
        self.K = training_intrinsics(d["K"], src, self.hw)
        self.mask = boundary_mask(d["mask"], self.hw)
        crop = tuple(int(c) for c in d["crop"])
        frames_dir = Path(frames_dir)
        images = []
        for index in d["view_indexes"]:
            img = load_network_image(frames_dir / f"{int(index):08d}.jpg", float(d["downsampling"]), crop)
            if img.shape[:2] != src:
                raise InputDataError(
                    frames_dir / f"{int(index):08d}.jpg",
                    f"crops to {img.shape[:2]}, not the network size {src} of {self.path}",
                    "re-run prepare_sfm_data",
                )
            if self.hw != src:
                img = cv2.resize(img, (self.hw[1], self.hw[0]), interpolation=cv2.INTER_AREA)
            images.append(img[..., ::-1])
        self.images = np.ascontiguousarray(np.stack(images))
        self.samples = []
        for v in range(len(d["view_indexes"])):
            usable = np.zeros(len(d["points"]), bool)
            usable[d["sparse_point"][d["sparse_view"] == v]] = True
            self.samples.append(
                frame_sparse_points(self.K, d["cam_from_world"][v], d["points"], usable, self.mask)
            )

    @property
    def n_views(self) -> int:
        return len(self.images)

    @property
    def global_scale(self) -> float:
        return float(self.data["global_scale"])

    def sparse_depth(self, view: int) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) float32 camera z / global_scale at the samples of ``view`` (0 elsewhere), and the mask."""
        _, xy, z = self.samples[view]
        return rasterise_sparse_depth(xy, z, self.hw, self.global_scale)

    def sparse_flow(self, view_a: int, view_b: int, max_abs: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
        """Normalised flow (H, W, 2) float32 of ``view_a``'s samples into ``view_b``:
        ``(round(projection in b) - pixel in a) / (W, H)``, and the mask (H, W) (0 where a
        component exceeds ``max_abs`` or the point is behind camera b)."""
        pid, xy, _ = self.samples[view_a]
        return rasterise_sparse_flow(
            self.K,
            self.data["cam_from_world"][view_b],
            self.data["points"][pid],
            xy,
            self.hw,
            max_abs,
            front_only=True,
        )

    def color(self, view: int) -> Tensor:
        """(3, H, W) float RGB in [0, 1] of a view."""
        return torch.from_numpy(self.images[view]).permute(2, 0, 1).float() / 255.0


def partner_offset(pos: int, n: int, adjacent: tuple[int, int], rng: np.random.Generator) -> int:
    """Signed view offset of the second frame (ENDO utils.generating_pos_and_increment):
    ``|offset|`` uniform in ``a .. min(b, room)``; forwards near the start, backwards near the
    end, random direction elsewhere. ``a`` drops to ``n // 2`` on short sequences."""
    a, b = adjacent
    if n <= 2 * a:
        a = max(1, n // 2)
    forward_room, backward_room = n - 1 - pos, pos
    if pos <= a - 1 or (forward_room >= a and backward_room < a):
        direction = 1
    elif forward_room < a:
        direction = -1
    else:
        direction = 1 if rng.random() < 0.5 else -1
    room = forward_room if direction > 0 else backward_room
    hi = max(min(b, room), min(a, room))
    lo = min(a, hi)
    return direction * int(rng.integers(lo, hi + 1))


class EndoPairDataset(Dataset):
    """Pairs of frames of one or several sequences.

    Returns per item (dict of tensors; frame 1 = the item's view, frame 2 = its partner):
        "color", "color_aug": (2, 3, H, W) RGB in [0, 1]; "mask": (1, H, W) {0, 1} boundary;
        "K": (3, 3) at the training size; "sparse_depth", "sparse_depth_mask": (2, 1, H, W)
        (depth = camera z / global_scale); "sparse_flow": (2, 2, H, W) normalised flow 1->2
        and 2->1 at the samples of frame 1 and 2; "sparse_flow_mask": (2, 1, H, W);
        "cam2_from_cam1", "cam1_from_cam2": (4, 4) with translations / global_scale;
        "step": the draw (the training loop's step); "sequence", "views": (2,) view rows.
    """

    def __init__(self, sequences: list[EndoSequence], opts: EndoDataOptions, seed: int = 0) -> None:
        if not sequences:
            raise ValueError("no sequences to train on")
        sizes = {s.hw for s in sequences}
        if len(sizes) > 1:
            raise InputDataError(
                sequences[0].path,
                f"sequences have different network sizes {sorted(sizes)}",
                "set endoscopy.sfm_data.crop_size or endoscopy.train.common.size",
            )
        self.sequences, self.opts, self.seed = sequences, opts, seed
        self.n_train = [training_views(seq.n_views, opts.val_fraction) for seq in sequences]
        self.index = [(s, v) for s, n in enumerate(self.n_train) for v in range(n)]
        for seq in sequences:
            if seq.n_views < 2:
                raise InputDataError(
                    seq.path,
                    f"only {seq.n_views} registered view(s)",
                    "a sequence needs two views to make pairs; drop it or fix its SfM",
                )

    def __len__(self) -> int:
        return self.opts.items_per_epoch or len(self.index)

    def pair(self, index: int, rng: np.random.Generator) -> tuple[int, int, int]:
        """(sequence, view 1, view 2) of an item, with a partner inside the visibility window
        and among the training views."""
        s, v = self.index[index % len(self.index)]
        seq = self.sequences[s]
        a, b = self.opts.adjacent_range
        b = max(1, min(b, int(seq.data["visibility_overlap"])))
        return s, v, v + partner_offset(v, self.n_train[s], (min(a, b), b), rng)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        draw, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, draw, index])
        for _ in range(20):  # the reference draws again when a frame has no sparse sample
            s, v1, v2 = self.pair(index, rng)
            seq = self.sequences[s]
            f12, m12 = seq.sparse_flow(v1, v2, self.opts.max_flow)
            f21, m21 = seq.sparse_flow(v2, v1, self.opts.max_flow)
            if m12.any() and m21.any():
                break
            index = int(rng.integers(len(self.index)))
        else:
            raise InputDataError(
                seq.path,
                "no frame pair with sparse flow in 20 draws",
                "check the SfM of this sequence (sfm_data.json: sparse_points_per_view)",
            )
        d1, dm1 = seq.sparse_depth(v1)
        d2, dm2 = seq.sparse_depth(v2)
        color = torch.stack([seq.color(v1), seq.color(v2)])
        if self.opts.augment:
            color_aug = torch.stack(
                [color_jitter(c, Jitter.draw(rng)) if rng.random() < 0.5 else c for c in color]
            )
        else:
            color_aug = color
        a_from_b, b_from_a = relative_motion(seq.data, v1, v2)
        return {
            "color": color,
            "color_aug": color_aug,
            "mask": torch.from_numpy(seq.mask[None] / 255.0).float(),
            "K": torch.from_numpy(seq.K).float(),
            "sparse_depth": torch.from_numpy(np.stack([d1, d2])[:, None]),
            "sparse_depth_mask": torch.from_numpy(np.stack([dm1, dm2])[:, None]),
            "sparse_flow": torch.from_numpy(np.stack([f12, f21]).transpose(0, 3, 1, 2).copy()),
            "sparse_flow_mask": torch.from_numpy(np.stack([m12, m21])[:, None]),
            "cam2_from_cam1": torch.from_numpy(b_from_a).float(),
            "cam1_from_cam2": torch.from_numpy(a_from_b).float(),
            "step": torch.tensor(draw),
            "sequence": torch.tensor(s),
            "views": torch.tensor([v1, v2]),
        }
