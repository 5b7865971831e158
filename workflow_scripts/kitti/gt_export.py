"""Ground truth of a test split, stored without pickle (stage ``export_gt_depth``).

File ``results/kitti/gt/<split>.npz`` (``np.load(path)`` works with the default
``allow_pickle=False``); frame ``i`` has the size ``shapes[i]`` (sizes differ between dates)::

    shapes  (N, 2) int32     height, width of each frame's map
    offsets (N + 1,) int64   frame i owns entries offsets[i]:offsets[i+1] of index / depth
    index   (M,) int32       linear pixel index v * W + u (ascending within a frame)
    depth   (M,) float32     metres, > 0 (pixels not listed have no ground truth)
    files   (N,) str         the split lines, in order
    source, depth_kind, duplicates: () str   how the maps were made

:func:`load_gt` returns the dense maps; :func:`save_monodepth2_npz` writes monodepth2's
``gt_depths.npz`` (an object array, which needs ``allow_pickle=True`` to load) for its tools.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.kitti.calib import KittiRig, load_rig
from workflow_scripts.kitti.gt_depth import (
    GtOptions,
    densify,
    groundtruth_png_path,
    png_depth_map,
    velodyne_gt,
)
from workflow_scripts.kitti.raw import velodyne_path
from workflow_scripts.kitti.split_files import SplitLine
from workflow_scripts.util import InputDataError, atomic_file
from workflow_scripts.util.options import option

__all__ = ["GtConfig", "GtSet", "split_source", "export_split", "save_gt", "load_gt", "save_monodepth2_npz"]
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class GtConfig(GtOptions):
    """Ground truth of the test splits (rule export_gt_depth -> results/kitti/gt/<split>.npz, loads
    without pickle). Split names are protocols: eigen = LiDAR projected as monodepth2 does (697
    frames on real KITTI); eigen_benchmark = KITTI's annotated depth maps (652 frames; needs the
    depth-completion annotations merged into the raw tree as <drive>/proj_depth/groundtruth/).
    On the demo, both use the frames of the held-out drives (demo.kitti.test_drives)."""

    splits: tuple[str, ...] = option(
        ("eigen", "eigen_benchmark"),
        "Test splits whose ground truth is exported: eigen, eigen_benchmark or paths of your own "
        "split files (monodepth2's format; LiDAR ground truth, named by the file's stem). The frames "
        "of every test split (and of kitti.evaluate.split) are kept out of training.",
        minItems=1,
        uniqueItems=True,
        items={"type": "string", "pattern": r"^(eigen|eigen_benchmark|.*/.*|.*\.txt)$"},
    )
    monodepth2_npz: bool = option(
        False,
        "Also write monodepth2's results/kitti/gt/<split>_gt_depths.npz (an "
        "object array that needs np.load(..., allow_pickle=True)) for monodepth2 / Depth "
        "Hints tools.",
    )


@dataclass
class GtSet:
    """Sparse ground-truth maps of a split (fields as in the module docstring)."""

    files: list[str]
    shapes: np.ndarray
    offsets: np.ndarray
    index: np.ndarray
    depth: np.ndarray
    meta: dict[str, str]

    def __len__(self) -> int:
        return len(self.files)

    def dense(self, i: int) -> np.ndarray:
        """(H, W) float32 map of frame ``i`` in metres, 0 = no ground truth."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return densify(self.index[a:b], self.depth[a:b], tuple(int(s) for s in self.shapes[i]))

    def maps(self) -> Iterator[np.ndarray]:
        return (self.dense(i) for i in range(len(self)))


def split_source(split: str) -> str:
    """Where a test split's ground truth comes from (by key): ``png`` (annotated maps) for
    eigen_benchmark, else ``velodyne`` (eigen and split files)."""
    return "png" if split == "eigen_benchmark" else "velodyne"


def _frames(
    lines: list[SplitLine], raw_root: Path, source: str, options: GtOptions
) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
    rigs: dict[str, KittiRig] = {}
    for line in lines:
        drive = raw_root / line.folder
        if source == "png":
            dense = png_depth_map(groundtruth_png_path(drive, line.frame, options.cam))
            index = np.flatnonzero(dense)
            yield index, dense.ravel()[index], dense.shape
            continue
        if line.date not in rigs:
            rigs[line.date] = load_rig(raw_root / line.date)
        index, depth = velodyne_gt(velodyne_path(drive, line.frame), rigs[line.date], options)
        yield index, depth, rigs[line.date].image_size[2]


def export_split(
    lines: list[SplitLine], raw_root: str | Path, source: str, options: GtOptions | None = None
) -> GtSet:
    """Ground truth of every line (camera ``options.cam``; the reference ignores the side).

    Args:
        source: ``velodyne`` (Eigen protocol from the scans) or ``png`` (annotated maps).
    """
    if source not in ("velodyne", "png"):
        raise ValueError(f"unknown ground-truth source {source!r}")
    options = options or GtOptions()
    raw_root = Path(raw_root)
    indices, depths, shapes = [], [], []
    for n, (index, depth, hw) in enumerate(_frames(lines, raw_root, source, options), 1):
        indices.append(index.astype(np.int32))
        depths.append(depth.astype(np.float32))
        shapes.append(hw)
        if n % 100 == 0:
            log.info("ground truth %d/%d", n, len(lines))
    sizes = np.array([len(i) for i in indices], np.int64)
    meta = {
        "source": source,
        "depth_kind": str(options.depth) if source == "velodyne" else "camera",
        "duplicates": str(options.duplicates) if source == "velodyne" else "none",
    }
    empty_i, empty_d = np.zeros(0, np.int32), np.zeros(0, np.float32)
    return GtSet(
        files=[line.text() for line in lines],
        shapes=np.array(shapes, np.int32).reshape(-1, 2),
        offsets=np.r_[0, np.cumsum(sizes)].astype(np.int64),
        index=np.concatenate(indices) if indices else empty_i,
        depth=np.concatenate(depths) if depths else empty_d,
        meta=meta,
    )


def _savez_fast(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with zlib level 1 (6x faster on dense maps, 15 % larger files);
    read by ``np.load`` as usual."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def save_gt(path: str | Path, gt: GtSet) -> None:
    """Write ``gt`` atomically as a compressed npz without object arrays."""
    arrays = dict(
        shapes=gt.shapes,
        offsets=gt.offsets,
        index=gt.index,
        depth=gt.depth,
        files=np.array(gt.files, dtype=str),
        **{k: np.array(v) for k, v in gt.meta.items()},
    )
    with atomic_file(path) as tmp:
        _savez_fast(tmp, arrays)


def load_gt(path: str | Path) -> GtSet:
    """Read a file written by :func:`save_gt` (never unpickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return GtSet(
                files=[str(s) for s in f["files"]],
                shapes=f["shapes"],
                offsets=f["offsets"],
                index=f["index"],
                depth=f["depth"],
                meta={k: str(f[k]) for k in ("source", "depth_kind", "duplicates")},
            )
    except (OSError, KeyError, ValueError) as err:
        raise InputDataError(
            path, f"not a ground-truth file of export_gt_depth ({err})", "re-run rule export_gt_depth"
        ) from err


def save_monodepth2_npz(path: str | Path, gt: GtSet) -> None:
    """monodepth2's ``gt_depths.npz``: ``data`` = object array of (H_i, W_i) float32 maps
    (load with ``np.load(path, allow_pickle=True)["data"]``, as Depth Hints' evaluation does)."""
    data = np.empty(len(gt), dtype=object)
    for i in range(len(gt)):
        data[i] = gt.dense(i)
    with atomic_file(path) as tmp:
        np.savez_compressed(tmp, data=data)
