"""Benchmark of the CT registration (register_ct): accuracy and speed, fully automatic.

1. --real (issue 15): a real nasal-cavity mesh (../shared/realdata/nasal_mesh_asr/ASR.ply, mm) as
   the CT. Each trial cuts the surface within a random radius (20-50 % of the mesh's largest
   side) of a random surface point, keeps 2-10 k points (5 % of them outliers drawn in the
   patch's bounding box), adds 0.1 mm noise, and moves it by a random similarity: scale
   0.5-2, ANY rotation (uniform over SO(3)), translation up to 50 mm. Success = rotation error
   <= 2 deg, scale error <= 2 %, centroid error <= 1 mm. The new search and today's method
   (the first version, LEGACY_OPTIONS) register the same clouds in the same run; prints the
   success rates, median / p95 seconds and their ratio. The CT's own preparation (samples,
   features: once per CT, cached) is timed apart.
   --scale-search also runs the two other places to search the scale (inside RANSAC: a
   similarity estimated from 3 correspondences at a coarser sweep; after: one scale guess from
   the robust radii, then the fine fit) on the same clouds.
2. --trials N: the demo cavity's trials (a tube segment, rotation up to 30 deg), as before.
3. --demo: per demo sequence with results/endo/<seq>/sfm_data.npz, an ORACLE prediction (the CT
   rendered from the SfM views through the SfM -> CT similarity of the true camera poses) is
   fused and registered like a stage's; prints the recovered similarity against the true one.

    OMP_NUM_THREADS=1 python bench/endo_register.py --real --trials 100
    OMP_NUM_THREADS=1 python bench/endo_register.py --trials 50 [--noise 0.1] [--demo]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workflow_scripts.endo.evaluate import registration_truth_check  # noqa: E402
from workflow_scripts.endo.pointcloud import PointCloudOptions, export_clouds  # noqa: E402
from workflow_scripts.endo.register import (  # noqa: E402
    LEGACY_OPTIONS,
    RegisterOptions,
    load_ct_surface,
    register_similarity,
)
from workflow_scripts.endo.register_trials import (  # noqa: E402
    PatchTrialOptions,
    TrialOptions,
    oracle_depth,
    patch_trial,
    run_trial,
)
from workflow_scripts.endo.sparse import load_sfm_data  # noqa: E402
from workflow_scripts.endo.trajectory import camera_centres, similarity_matrix  # noqa: E402
from workflow_scripts.util.ply import read_ply  # noqa: E402

ASR = ROOT.parent / "shared/realdata/nasal_mesh_asr/ASR.ply"


def real(ct_path: Path, n: int, seed: int, scale_search: bool, skip_legacy: bool) -> None:
    ct = load_ct_surface(ct_path)
    dense = np.asarray(ct.sample(0.2, seed + 100).points)  # about 350 k points on ASR
    methods = {"new": RegisterOptions(seed=seed)}
    if not skip_legacy:
        methods["today"] = replace(LEGACY_OPTIONS, seed=seed)
    if scale_search:
        methods["inside"] = replace(RegisterOptions(seed=seed), scale_search="inside")
        methods["after"] = replace(RegisterOptions(seed=seed), scale_search="after")
    start = time.perf_counter()
    warm = patch_trial(ct, dense, np.random.default_rng([seed, 999]), methods={"new": methods["new"]})
    print(
        f"CT {ct_path.name}: largest side {ct.extent_mm:.1f} mm; preparation (samples, features) and a "
        f"warm-up registration {time.perf_counter() - start:.1f} s (warm-up ok: {warm['new']['success']})"
    )
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r = patch_trial(ct, dense, rng, PatchTrialOptions(), methods)
        rows.append(r)
        parts = [
            f"{name} {'ok  ' if r[name]['success'] else 'FAIL'} rot {r[name]['rotation_deg']:6.2f} deg "
            f"scale {100 * r[name]['scale_error']:5.2f} % centroid {r[name]['centroid_mm']:6.2f} mm "
            f"{'AMBIGUOUS ' if r[name]['ambiguous'] else ''}{r[name]['seconds']:5.1f} s "
            f"(cpu {r[name]['cpu_seconds']:5.1f})"
            for name in methods
        ]
        print(
            f"trial {i:3d}: radius {r['radius_mm']:4.1f} mm, {r['points']:5d} points | " + " | ".join(parts),
            flush=True,
        )
    print()
    medians = {}
    for name in methods:
        ok = np.array([r[name]["success"] for r in rows])
        amb = np.array([r[name]["ambiguous"] for r in rows])
        sec = np.array([r[name]["seconds"] for r in rows])
        cpu = np.array([r[name]["cpu_seconds"] for r in rows])
        medians[name] = float(np.median(sec))
        print(
            f"{name:6s}: success {ok.sum()}/{n} ({100 * ok.mean():.0f} %), ambiguous {amb.sum()} "
            f"(of the failures {np.sum(amb & ~ok)}/{np.sum(~ok)}); seconds median {np.median(sec):.2f} "
            f"p95 {np.percentile(sec, 95):.2f} max {sec.max():.2f}; cpu seconds median {np.median(cpu):.2f} "
            f"p95 {np.percentile(cpu, 95):.2f}"
        )
    if "today" in medians:
        print(f"median time new / today: {medians['new'] / medians['today']:.2f}")
    print(
        f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])} "
        f"({len(__import__('os').sched_getaffinity(0))} cores)"
    )


def trials(ct_path: Path, n: int, noise: float, seed: int) -> None:
    ct = load_ct_surface(ct_path)
    dense = np.asarray(ct.sample(0.3, seed).points)
    rng = np.random.default_rng(seed)
    opts = TrialOptions(noise_mm=noise)
    rows = []
    for i in range(n):
        r = run_trial(ct, dense, rng, opts)
        rows.append(r)
        print(
            f"trial {i:3d}: {'ok  ' if r['success'] else 'FAIL'} rms {r['rms_mm']:.4f} mm, pose error "
            f"{r['pose_error_mm']:.4f} mm, scale ratio {r['scale_ratio']:.5f}, {r['points']} points, "
            f"{r['hypotheses']} hypotheses, {r['seconds']:.2f} s",
            flush=True,
        )
    ok = np.array([r["success"] for r in rows])
    rms = np.array([r["rms_mm"] for r in rows])
    pose = np.array([r["pose_error_mm"] for r in rows])
    sec = np.array([r["seconds"] for r in rows])
    print(f"\nsuccess {ok.sum()}/{n} ({100 * ok.mean():.1f} %), noise {noise} mm, threshold {noise + 0.1} mm")
    print(
        f"residual RMS mean {rms.mean():.4f} max {rms.max():.4f} mm; pose error median "
        f"{np.median(pose):.4f} max {pose.max():.4f} mm"
    )
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
        for name, opts in (("new", RegisterOptions()), ("today", LEGACY_OPTIONS)):
            start = time.perf_counter()
            out = register_similarity(points, ct, opts)
            sec = time.perf_counter() - start
            check = registration_truth_check(out["ct_from_cloud"], sfm, true_cam, frames)
            st = out["stats"]
            print(
                f"{seq} oracle, {name}: {out['points']} points, residual median {st['median_mm']:.4f} RMS "
                f"{st['rms_mm']:.4f} mm, {sec:.1f} s; vs truth: scale ratio {check['scale_ratio']:.5f}, "
                f"rotation {check['rotation_deg']:.3f} deg, camera centres RMS "
                f"{check['camera_rms_mm']:.3f} mm (Umeyama fit itself "
                f"{check['reference_fit_rms_mm']:.3f} mm); "
                f"ambiguous {out['ambiguous']} "
                f"(runner-up ratio {out['runner_up_ratio']})",
                flush=True,
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--ct", type=Path, default=None, help="CT surface (default: ASR.ply with --real, else the demo's)"
    )
    ap.add_argument("--real", action="store_true", help="real-anatomy trials (issue 15)")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument(
        "--noise", type=float, default=0.1, help="Gaussian noise, mm (per axis; demo-cavity trials)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--scale-search", action="store_true", help="--real: also the scale searched inside / after"
    )
    ap.add_argument("--skip-today", action="store_true", help="--real: without today's method")
    ap.add_argument("--demo", action="store_true", help="also the oracle check on results/endo/<seq>")
    args = ap.parse_args()
    if args.real:
        real(args.ct or ASR, args.trials, args.seed, args.scale_search, args.skip_today)
    elif args.trials:
        trials(
            args.ct or ROOT / "resources/demo/endoscopy/ct_surface.ply", args.trials, args.noise, args.seed
        )
    if args.demo:
        demo(ROOT / "results/endo", ROOT / "resources/demo/endoscopy")
