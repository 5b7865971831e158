"""Benchmark (by hand, not CI): ground-truth export per frame vs the floor of reading a scan and
projecting it, and identity with the depth maps monodepth2's own ``generate_depth_map`` produced
for the golden fixtures (tests/fixtures/reference, PROVENANCE.md there).

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/kitti_gt_export.py [--root R] [--drive D] [--frames N]

Floor (per frame; each method runs in a fresh process and makes whole passes over the drive, a
new scan each call, as the export does; per frame the best of --repeat passes): np.fromfile + the float64
projection of the points in front (x >= 0) and the perspective division, i.e. the reference's
arithmetic before any rounding or rasterising. Ours: velodyne_gt as export_gt_depth runs it.
Target: ours <= 1.3 x floor. Snakemake sets OPENBLAS_NUM_THREADS to the job's threads (1).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.kitti import reference_fixtures as ref  # noqa: E402
from workflow_scripts.kitti import calib as kc  # noqa: E402
from workflow_scripts.kitti.gt_depth import DepthSource, GtOptions, densify, velodyne_gt  # noqa: E402


def floor_front(path: Path, P: np.ndarray) -> None:
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
    xyz1 = np.compress(pts[:, 0] >= 0, pts, axis=0).astype(np.float64)
    xyz1[:, 3] = 1.0
    p = np.dot(P, xyz1.T)
    p[:2] /= p[2]


def _passes(method: str, root: str, date: str, scans: list[Path], repeat: int) -> np.ndarray:
    """Per-frame best of ``repeat`` passes over ``scans`` (run in a fresh process)."""
    rig = kc.load_rig(Path(root) / date)
    P = rig.velo_to_image(2)
    fns = {"floor": lambda path: floor_front(path, P), "ours": lambda path: velodyne_gt(path, rig)}
    fn, times = fns[method], np.full((repeat, len(scans)), np.inf)
    for r in range(repeat):
        for i, path in enumerate(scans):
            t = time.perf_counter()
            fn(path)
            times[r, i] = time.perf_counter() - t
    return times.min(axis=0)


def identical_to_reference(tmp: Path) -> tuple[int, int]:
    """(identical, total) golden cases: our export path (``velodyne_gt`` on the scan's ``.bin``,
    densified) against monodepth2's output, for every fixture scan, vel_depth True and False."""
    same = total = 0
    for name in ref.gt_scan_names():
        rig = kc.load_rig(ref.gt_rig_dir(name))
        ref.gt_scan(name).tofile(tmp / "scan.bin")
        for vel_depth in (True, False):
            options = GtOptions(depth=DepthSource.VELODYNE if vel_depth else DepthSource.CAMERA)
            ours = densify(*velodyne_gt(tmp / "scan.bin", rig, options), rig.image_size[2])
            same += np.array_equal(ours, ref.gt_reference(name, vel_depth).astype(np.float32))
            total += 1
    return same, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="resources/demo/kitti_raw", help="KITTI raw root")
    ap.add_argument("--drive", default="2011_01_02/2011_01_02_drive_0003_sync")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    root, (date, _) = Path(args.root), args.drive.split("/")
    rig = kc.load_rig(root / date)
    scans = sorted((root / args.drive / "velodyne_points" / "data").glob("*.bin"))[: args.frames]
    # each method in its own fresh process: the allocator's state (which large arrays page-fault)
    # otherwise carries from one method to the next and dominates the timings
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        per_frame = {m: pool.apply(_passes, (m, str(root), date, scans, args.repeat))
                     for m in ("floor", "ours")}
    with tempfile.TemporaryDirectory() as tmp:
        same, cases = identical_to_reference(Path(tmp))
    n_points = np.mean([p.stat().st_size / 16 for p in scans])
    ms = {k: 1e3 * float(np.median(v)) for k, v in per_frame.items()}
    print(f"{len(scans)} scans of {args.drive} ({n_points:.0f} points each), image {rig.image_size[2]}")
    print(f"  read + project (floor)  {ms['floor']:7.3f} ms/frame")
    print(f"  export_gt_depth (ours)  {ms['ours']:7.3f} ms/frame  ->  "
          f"{ms['ours'] / ms['floor']:.2f} x floor (target <= 1.3)")
    print(f"  identical to monodepth2's generate_depth_map on the golden fixtures: {same}/{cases} cases")

if __name__ == "__main__":
    main()
