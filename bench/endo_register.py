"""Benchmark of the CT registration (register_ct): accuracy and speed, fully automatic.

1. Random trials: a partial cloud of the CT surface (a cavity segment), Gaussian noise, a random
   similarity (scale 0.5-2, rotation up to 30 deg about a random axis, translation up to
   200 mm), registered back. Success = residual RMS <= noise + 0.1 mm. Prints the success rate,
   residual RMS, pose error (RMS of the noise-free points under true vs recovered transform),
   scale ratio and seconds per registration.
2. --demo: per demo sequence with results/endo/<seq>/sfm_data.npz, an ORACLE prediction (the CT
   rendered from the SfM views through the SfM -> CT similarity of the true camera poses) is
   fused and registered like a stage's; prints residuals and the recovered similarity against
   the true one. The oracle lives here and in the tests only, never in the workflow.

    OMP_NUM_THREADS=1 python bench/endo_register.py --trials 50 [--noise 0.1] [--demo]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workflow_scripts.endo.evaluate import registration_truth_check
from workflow_scripts.endo.pointcloud import PointCloudOptions, export_clouds  # noqa: E402
from workflow_scripts.endo.register import load_ct_surface, register_similarity  # noqa: E402
from workflow_scripts.endo.register_trials import TrialOptions, oracle_depth, run_trial  # noqa: E402
from workflow_scripts.endo.sparse import load_sfm_data  # noqa: E402
from workflow_scripts.endo.trajectory import camera_centres, similarity_matrix  # noqa: E402
from workflow_scripts.util.ply import read_ply  # noqa: E402


def trials(ct_path: Path, n: int, noise: float, seed: int) -> None:
    ct = load_ct_surface(ct_path)
    dense = np.asarray(ct.sample(0.3, seed).points)
    rng = np.random.default_rng(seed)
    opts = TrialOptions(noise_mm=noise)
    rows = []
    for i in range(n):
        r = run_trial(ct, dense, rng, opts)
        rows.append(r)
        print(f"trial {i:3d}: {'ok  ' if r['success'] else 'FAIL'} rms {r['rms_mm']:.4f} mm, pose error "
              f"{r['pose_error_mm']:.4f} mm, scale ratio {r['scale_ratio']:.5f}, {r['points']} points, "
              f"{r['hypotheses']} hypotheses, {r['seconds']:.2f} s", flush=True)
    ok = np.array([r["success"] for r in rows])
    rms = np.array([r["rms_mm"] for r in rows])
    pose = np.array([r["pose_error_mm"] for r in rows])
    sec = np.array([r["seconds"] for r in rows])
    print(f"\nsuccess {ok.sum()}/{n} ({100 * ok.mean():.1f} %), noise {noise} mm, threshold {noise + 0.1} mm")
    print(f"residual RMS mean {rms.mean():.4f} max {rms.max():.4f} mm; pose error median "
          f"{np.median(pose):.4f} max {pose.max():.4f} mm")
    print(f"seconds per registration: median {np.median(sec):.2f}, max {sec.max():.2f}")


def demo(results: Path, demo_root: Path) -> None:
    ct = load_ct_surface(demo_root / "ct_surface.ply")
    for npz in sorted(results.glob("*/sfm_data.npz")):
        seq = npz.parent.name
        sfm = load_sfm_data(npz)
        with np.load(demo_root / "gt" / seq / "poses.npz") as f:
            true_cam, frames = f["cam_from_world"], f["frame"]
        row = {int(fr): i for i, fr in enumerate(frames)}
        c_true = camera_centres(true_cam[[row[int(fr)] for fr in sfm["view_indexes"]]])
        ct_from_sfm = similarity_matrix(camera_centres(sfm["cam_from_world"]), c_true)
        pred = oracle_depth(sfm, ct, ct_from_sfm)
        with tempfile.TemporaryDirectory() as tmp:
            fused = Path(tmp) / "fused.ply"
            export_clouds(pred, sfm, npz.parent / "frames", fused, None, PointCloudOptions(frame_plys=False))
            points = read_ply(fused).vertices
        start = time.perf_counter()
        out = register_similarity(points, ct)
        sec = time.perf_counter() - start
        check = registration_truth_check(out["ct_from_cloud"], sfm, true_cam, frames)
        st = out["stats"]
        print(f"{seq} oracle: {out['points']} points, residual mean {st['mean_mm']:.4f} median "
              f"{st['median_mm']:.4f} RMS {st['rms_mm']:.4f} p95 {st['p95_mm']:.4f} mm, {sec:.1f} s; "
              f"vs truth: scale ratio {check['scale_ratio']:.5f}, rotation {check['rotation_deg']:.3f} deg, "
              f"camera centres RMS {check['camera_rms_mm']:.3f} mm (Umeyama fit itself "
              f"{check['reference_fit_rms_mm']:.3f} mm)", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ct", type=Path, default=ROOT / "resources/demo/endoscopy/ct_surface.ply")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--noise", type=float, default=0.1, help="Gaussian noise, mm (per axis)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--demo", action="store_true", help="also the oracle check on results/endo/<seq>")
    args = ap.parse_args()
    if args.trials:
        trials(args.ct, args.trials, args.noise, args.seed)
    if args.demo:
        demo(ROOT / "results/endo", args.ct.parent)
