"""Benchmark (by hand, not CI): depth hints per frame and side vs the bare time of the SGBM
calls they make, both with the same pool of worker processes (the rule's threads), and agreement
with the hints Depth Hints itself produced (tests/fixtures/reference, PROVENANCE.md there).

    PYTHONPATH=. python bench/kitti_depth_hints.py [--size 160 512 | --paper] [--jpeg] [--workers 2] \\
        [--frames 16] [--root resources/demo/kitti_raw]

  bare SGBM, 8  the 16 StereoSGBM.compute calls of a frame that the workflow makes: the 8 distinct
                settings x 2 sides (blockSize 2 and 3 share OpenCV's 3x3 window, so 4 of the
                reference's 12 settings are bit-identical copies), right side flipped, on images
                already resized in memory, frames spread over the pool
  bare SGBM, 12 the reference's 24 calls (all 12 settings x 2 sides), for comparison only
  hints         precompute_drive() as rule precompute_depth_hints runs it: read both PNGs, resize,
                the 16 SGBM calls, fuse, write two .npy files
Target: hints <= 1.5 x bare SGBM of the 8 distinct settings, per frame and side, both with
--workers processes: the fusion (12 candidates' warp + SSIM, 8 of them distinct) may add at most
half of the SGBM time it needs. The ratio to the 12 bare calls is printed too; it is below 1
only because the 4 copies are skipped, so it is no measure of our overhead.
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
    fused_depth_hint,
    make_matchers,
    sgbm_disparities,
)

TARGET = 1.5  # hints / bare SGBM of the distinct settings, per frame and side
_PAIRS: list = []
_MATCHERS: list = []
_BARE: list = []  # the matchers a bare run calls


def _distinct(matchers: list) -> list:
    """The first matcher of each distinct effective setting: the ones the workflow runs."""
    seen: dict[tuple, object] = {}
    for m in matchers:
        seen.setdefault(effective_setting(m), m)
    return list(seen.values())


def _init(pairs: list | None = None, distinct_only: bool = False) -> None:
    global _MATCHERS, _BARE
    cv2.setNumThreads(1)
    _MATCHERS = make_matchers()
    _BARE = _distinct(_MATCHERS) if distinct_only else _MATCHERS
    if pairs is not None:
        _PAIRS[:] = pairs


def _bare_sgbm(i: int) -> int:
    left, right = _PAIRS[i]
    for m in _BARE:
        m.compute(left, right)
        m.compute(np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1]))
    return i


def bare_pool(n: int, workers: int, distinct_only: bool) -> float:
    """Wall time of the bare SGBM calls of ``n`` frames over the pool (pool start excluded):
    the distinct settings only, or all 12 as the reference calls them."""
    with mp.get_context("spawn").Pool(workers, _init, (_PAIRS, distinct_only)) as pool:
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
            fuse_candidates(
                base / np.float32(255),
                lookup / np.float32(255),
                disparity_to_depth(disp, fx, 0.1),
                fx,
                0.1,
                is_right,
            )
            sgbm, fuse = sgbm + t1 - t0, fuse + time.perf_counter() - t1
    return {"sgbm": sgbm / (2 * n), "fuse": fuse / (2 * n)}


def agreement_with_reference() -> tuple[int, int]:
    """(identical, total) pixels of our hints and those Depth Hints saved for the fixture pairs
    (both views, at the fixtures' own sizes, with the reference's K and baseline)."""
    from tests.kitti import reference_fixtures as ref

    same = total = 0
    for pair, hw in ref.HINT_PAIRS.items():
        left, right = (load_rgb(p, hw) for p in ref.hint_images(pair))
        for cam, (base, lookup) in ((2, (left, right)), (3, (right, left))):
            fx = normalised_focal(0.58, hw[1])
            ours = fused_depth_hint(base, lookup, cam == 3, fx, 0.1, make_matchers())
            theirs = ref.hint_reference(pair, cam)[0]
            same, total = same + int(np.sum(ours == theirs)), total + ours.size
    return same, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="resources/demo/kitti_raw")
    ap.add_argument("--drive", default="2011_01_01/2011_01_01_drive_0001_sync")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, nargs=2, default=(160, 512), metavar=("H", "W"))
    ap.add_argument("--paper", action="store_true", help="the reference's 320 x 1024")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--jpeg",
        action="store_true",
        help="read JPEG copies (quality 92, 4:2:0) as the references do, not the demo's PNGs",
    )
    args = ap.parse_args()
    size = (320, 1024) if args.paper else tuple(args.size)
    root, drive = Path(args.root), Path(args.root) / args.drive
    frames = sorted(int(p.stem) for p in (drive / "image_02" / "data").glob("*.png"))[: args.frames]
    _PAIRS[:] = [
        (load_rgb(raw.image_path(drive, 2, f), size), load_rgb(raw.image_path(drive, 3, f), size))
        for f in frames
    ]
    options = HintOptions(size=size)
    bare8, bare12, ours = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        image_root, ext = root, "png"
        if args.jpeg:
            image_root, ext = Path(tmp) / "jpeg", "jpg"
            convert_drive(drive, image_root / args.drive, workers=args.workers)
        for r in range(args.repeat):  # alternate, keep the best of each: robust to a shared machine
            bare8.append(bare_pool(len(frames), args.workers, distinct_only=True))
            bare12.append(bare_pool(len(frames), args.workers, distinct_only=False))
            t = time.perf_counter()
            precompute_drive(
                root, image_root, args.drive, frames, Path(tmp) / f"h{r}", options, ext, workers=args.workers
            )
            ours.append(time.perf_counter() - t)
    per = 2 * len(frames)
    b8, b12, o = min(bare8) / per, min(bare12) / per, min(ours) / per
    n8 = len(_distinct(make_matchers()))
    split = split_one_process(size)
    same, total = agreement_with_reference()
    print(
        f"{len(frames)} frames of {args.drive} ({'JPEG' if args.jpeg else 'PNG'}) at {size[1]}x{size[0]}, "
        f"{args.workers} worker processes"
    )
    unit = "ms per frame and side"
    print(f"  bare SGBM, {n8} distinct settings {1e3 * b8:7.1f} {unit} (wall, pool): the calls we make")
    print(f"  bare SGBM, 12 settings     {1e3 * b12:7.1f} {unit} (wall, pool): the reference's calls")
    print(f"  depth hints (ours)         {1e3 * o:7.1f} {unit} (wall of the whole drive job)")
    verdict = "met" if o / b8 <= TARGET else "NOT met"
    print(f"  ratio to the {n8} SGBM calls we make: {o / b8:.3f}  (target <= {TARGET}: {verdict})")
    print(
        f"  ratio to the reference's 12 calls:  {o / b12:.3f}  "
        f"(for comparison only; skipping the 4 copies gains {b12 / b8:.2f}x)"
    )
    print(f"  one process, {unit}: SGBM {1e3 * split['sgbm']:.1f} ms, fusion {1e3 * split['fuse']:.1f} ms")
    print(
        f"  pixels identical to Depth Hints' own output (fixtures, {total} px): {same} "
        f"({100 * same / total:.3f} %)"
    )


if __name__ == "__main__":
    main()
