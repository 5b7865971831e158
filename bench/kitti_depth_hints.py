"""Benchmark (by hand, not CI): depth hints per frame and side vs the bare time of their 12 SGBM
calls, both with the same pool of worker processes (the rule's threads), and agreement with a
torch port of the reference fusion.

    PYTHONPATH=. python bench/kitti_depth_hints.py [--size 160 512 | --paper] [--jpeg] [--workers 2] [--frames 16]

  bare SGBM   the 24 StereoSGBM.compute calls of a frame (12 settings x 2 sides, right side
              flipped), on images already resized in memory, frames spread over the pool
  hints       precompute_drive() as rule precompute_depth_hints runs it: read both PNGs,
              resize, the SGBM calls (16: blockSize 2 and 3 share OpenCV's 3x3 window, so 4 of
              the 12 settings are bit-identical copies and run once), fuse, write two .npy files
Target: hints <= 1.15 x bare SGBM, per frame and side, both with --workers processes. Also
printed: the overhead over the distinct SGBM calls alone (bare x distinct / 12).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workflow_scripts.kitti import raw  # noqa: E402
from workflow_scripts.kitti.depth_hints import HintOptions, load_rgb, normalised_focal, precompute_drive  # noqa: E402
from workflow_scripts.kitti.jpeg import convert_drive  # noqa: E402
from workflow_scripts.kitti.sgm_fusion import (  # noqa: E402
    disparity_to_depth,
    effective_setting,
    fuse_candidates,
    make_matchers,
    sgbm_disparities,
)

_PAIRS: list = []
_MATCHERS: list = []


def _init(pairs: list | None = None) -> None:
    global _MATCHERS
    cv2.setNumThreads(1)
    _MATCHERS = make_matchers()
    if pairs is not None:
        _PAIRS[:] = pairs


def _bare_sgbm(i: int) -> int:
    left, right = _PAIRS[i]
    for m in _MATCHERS:
        m.compute(left, right)
        m.compute(np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1]))
    return i


def bare_pool(n: int, workers: int) -> float:
    """Wall time of the bare SGBM calls of ``n`` frames over the pool (pool start excluded)."""
    with mp.get_context("spawn").Pool(workers, _init, (_PAIRS,)) as pool:
        pool.map(time.sleep, [0.2] * workers, chunksize=1)  # every worker started and initialised
        t = time.perf_counter()
        list(pool.imap_unordered(_bare_sgbm, range(n)))
        return time.perf_counter() - t


def split_one_process(size, n: int = 3) -> dict[str, float]:
    """Seconds per frame and side in one process: SGBM, fusion, the rest (read, resize, save)."""
    _init()
    sgbm = fuse = 0.0
    fx = normalised_focal(0.58, size[1])
    for left, right in _PAIRS[:n]:
        for base, lookup, is_right in ((left, right, False), (right, left, True)):
            t0 = time.perf_counter()
            disp = sgbm_disparities(base, lookup, _MATCHERS, is_right)
            t1 = time.perf_counter()
            fuse_candidates(base / np.float32(255), lookup / np.float32(255), disparity_to_depth(disp, fx, 0.1),
                            fx, 0.1, is_right)
            sgbm, fuse = sgbm + t1 - t0, fuse + time.perf_counter() - t1
    return {"sgbm": sgbm / (2 * n), "fuse": fuse / (2 * n)}


def agreement_with_port(size) -> float:
    from tests.kitti.reference_ports import dh_fuse

    left, right = _PAIRS[0]
    fx = normalised_focal(0.58, size[1])
    same = []
    for base, lookup, is_right, side in ((left, right, False, "l"), (right, left, True, "r")):
        disp = sgbm_disparities(base, lookup, _MATCHERS, is_right)
        ours = fuse_candidates(base / np.float32(255), lookup / np.float32(255), disparity_to_depth(disp, fx, 0.1),
                               fx, 0.1, is_right)
        same.append(np.mean(ours == dh_fuse(base, lookup, disp, side, *size)[0]))
    return float(np.mean(same))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="resources/demo/kitti_raw")
    ap.add_argument("--drive", default="2011_01_01/2011_01_01_drive_0001_sync")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, nargs=2, default=(160, 512), metavar=("H", "W"))
    ap.add_argument("--paper", action="store_true", help="the reference's 320 x 1024")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jpeg", action="store_true",
                    help="read JPEG copies (quality 92, 4:2:0) as the references do, not the demo's PNGs")
    args = ap.parse_args()
    size = (320, 1024) if args.paper else tuple(args.size)
    root, drive = Path(args.root), Path(args.root) / args.drive
    frames = sorted(int(p.stem) for p in (drive / "image_02" / "data").glob("*.png"))[: args.frames]
    _PAIRS[:] = [(load_rgb(raw.image_path(drive, 2, f), size), load_rgb(raw.image_path(drive, 3, f), size))
                 for f in frames]
    options = HintOptions(size=size)
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        image_root, ext = root, "png"
        if args.jpeg:
            image_root, ext = Path(tmp) / "jpeg", "jpg"
            convert_drive(drive, image_root / args.drive, workers=args.workers)
        for r in range(args.repeat):  # alternate, keep the best of each: robust to a shared machine
            bare.append(bare_pool(len(frames), args.workers))
            t = time.perf_counter()
            precompute_drive(root, image_root, args.drive, frames, Path(tmp) / f"h{r}", options, ext,
                             workers=args.workers)
            ours.append(time.perf_counter() - t)
    per = 2 * len(frames)
    b, o = min(bare) / per, min(ours) / per
    split = split_one_process(size)
    print(f"{len(frames)} frames of {args.drive} ({'JPEG' if args.jpeg else 'PNG'}) at {size[1]}x{size[0]}, "
          f"{args.workers} worker processes")
    print(f"  bare 12 SGBM calls      {1e3 * b:7.1f} ms per frame and side (wall, pool)")
    print(f"  depth hints (ours)      {1e3 * o:7.1f} ms per frame and side (wall of the whole drive job)")
    print(f"  ratio                   {o / b:.3f}  (target <= 1.15)")
    distinct = len({effective_setting(m) for m in make_matchers()})
    print(f"  over the {distinct} distinct SGBM settings alone (bare x {distinct}/12): {o / (b * distinct / 12):.3f}")
    print(f"  one process, per frame and side: SGBM {1e3 * split['sgbm']:.1f} ms, fusion {1e3 * split['fuse']:.1f} ms")
    print(f"  pixels identical to the torch port of the reference fusion: {100 * agreement_with_port(size):.2f} %")


if __name__ == "__main__":
    main()
