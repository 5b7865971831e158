"""Benchmark of the endoscopy SfM (run by hand, not a test): time and trajectory accuracy of
run_sfm with the config's demo settings against a baseline of COLMAP's default extraction and
matching settings (8192 features, first octave -1, full size, overlap 10), in the same run.

    PYTHONPATH=. python bench/endo_sfm.py                       # demo seq01 (resources/demo)
    PYTHONPATH=. python bench/endo_sfm.py --seq seq02 --skip-baseline

Prints, per setting: frames registered, points, the extraction / matching / mapping seconds,
and the camera-centre RMSE after a similarity alignment to the ground truth in % of the
trajectory length; then the speed ratio baseline / config.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from workflow_scripts.config.resolve import resolve
from workflow_scripts.endo.camera import load_camera
from workflow_scripts.endo.extract import ExtractOptions, extract_frames
from workflow_scripts.endo.scene import scene_from_colmap
from workflow_scripts.endo.sfm import SfMOptions, run_sfm_on_frames
from workflow_scripts.endo.trajectory import camera_centres, trajectory_error
from workflow_scripts.util.options import load_options

ROOT = Path(__file__).resolve().parents[1]


def run(frames: Path, out: Path, options: SfMOptions, gt: dict) -> dict:
    start = time.perf_counter()
    summary = run_sfm_on_frames(frames, out, options)
    seconds = time.perf_counter() - start
    scene = scene_from_colmap(out / "model", frames)
    row = {int(f): i for i, f in enumerate(gt["frame"])}
    ref = camera_centres(gt["cam_from_world"][[row[int(i)] for i in scene.view_indexes]])
    err = trajectory_error(camera_centres(scene.cam_from_world), ref)
    return {
        "seconds": seconds,
        "registered": f"{summary['registered']}/{summary['frames']}",
        "points": summary["points3D"],
        "times": {k: round(v, 1) for k, v in summary["times"].items()},
        "rmse_pct": round(err["rmse_pct"], 3),
        "max_pct": round(err["max_pct"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo-root", type=Path, default=ROOT / "resources" / "demo" / "endoscopy")
    parser.add_argument("--seq", default="seq01")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    config = resolve()  # config.yaml + the demo overlay + defaults
    endo = config["endoscopy"]
    with np.load(args.demo_root / "gt" / args.seq / "poses.npz") as f:
        gt = {k: f[k] for k in f.files}
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        extract_frames(
            args.demo_root / f"{args.seq}.mp4",
            load_camera(args.demo_root / "camera.yaml"),
            frames,
            load_options(ExtractOptions, endo["frames"]),
        )
        ours = load_options(SfMOptions, endo["sfm"], seed=config["seed"])
        results = {"config": run(frames, Path(tmp) / "ours", ours, gt)}
        if not args.skip_baseline:
            base = dataclasses.replace(
                ours, max_image_size=-1, max_num_features=8192, first_octave=-1, overlap=10
            )
            results["baseline"] = run(frames, Path(tmp) / "base", base, gt)
    for name, r in results.items():
        print(f"{name:9s} {r}")
    if "baseline" in results:
        ratio = results["baseline"]["seconds"] / results["config"]["seconds"]
        print(f"speed-up config vs baseline: {ratio:.2f}x")


if __name__ == "__main__":
    main()
