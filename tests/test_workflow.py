"""The Snakemake workflow as a whole: dry run, lint, and an end-to-end run on a tiny demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT

TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake with the project's Snakefile (targets must come before list options)."""
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(ROOT / "Snakefile")]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of a dry run."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    jobs = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def test_dry_run_plans_the_demo(tmp_path):
    run = snakemake("all", "-n", "--directory", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    for rule in ("make_demo_kitti", "make_demo_endoscopy"):
        assert rule in run.stdout


@pytest.mark.slow
def test_end_to_end_tiny_demo(tiny_demo_run):
    """`snakemake all` on a reduced demo in a fresh folder (conftest.tiny_demo_run): jobs succeed,
    both tables and the report's figures exist, with logs and benchmarks, and a second run has
    nothing to do. (The lint check is in tests/test_code_quality.py.)"""
    tiny_demo_run.check()
    tmp_path = tiny_demo_run.folder
    kitti = tmp_path / "resources" / "demo" / "kitti_raw"
    drive = kitti / "2011_01_01" / "2011_01_01_drive_0001_sync"
    assert sorted(p.name for p in (drive / "image_02" / "data").iterdir()) == [
        f"{i:010d}.png" for i in range(3)
    ]
    assert (kitti / "2011_01_02" / "calib_cam_to_cam.txt").is_file()
    endo = tmp_path / "resources" / "demo" / "endoscopy"
    assert {p.name for p in endo.iterdir()} >= {"p1", "camera.yaml", "gt"}
    assert {p.name for p in (endo / "p1").iterdir()} == {"seq01.mp4", "ct_surface.ply"}
    for rule in ("make_demo_kitti", "make_demo_endoscopy"):
        assert (tmp_path / "logs" / rule / f"{rule}.log").stat().st_size > 0
        assert (tmp_path / "benchmarks" / rule / f"{rule}.tsv").is_file()
    assert not list(tmp_path.glob("resources/demo/.*tmp"))  # no half-written leftovers
    hints = "results/kitti/depth_hints/2011_01_01/2011_01_01_drive_0001_sync"
    for rel in (
        "results/kitti/gt/eigen.npz",
        "results/kitti/gt/eigen_benchmark.npz",
        "results/kitti/splits/train_files.txt",
        f"{hints}/image_03/0000000001.npy",
    ):
        assert (tmp_path / rel).is_file(), rel
    table = pd.read_csv(tmp_path / "results" / "kitti_eval.csv")
    assert list(zip(table.stage, table.scaling, strict=True)) == [
        (stage, scaling)
        for stage in ("teacher", "student", "finetune", "finetune_unmasked", "constant")
        for scaling in ("median", "stereo")
    ]
    assert (table.n_frames == 3).all()  # the held-out drive's 3 frames
    assert np.isfinite(table[["abs_rel", "rmse", "a1", "abs_rel_movable"]].to_numpy()).all()
    # SGDepth (config/demo.yaml): a segmentation head from the student on, the masked fine-tune's control
    seg = pd.read_csv(tmp_path / "results" / "kitti_seg_eval.csv")
    assert list(seg.stage) == ["student", "finetune", "finetune_unmasked", "majority"]
    assert ((seg.miou >= 0) & (seg.miou <= 1)).all() and "iou_car" in seg.columns
    assert (table.loc[table.scaling == "stereo", "scale_median"] == 5.4).all()  # 0.54 m / 0.1
    for stage in ("teacher", "student", "finetune"):
        disps = np.load(tmp_path / "results" / "kitti" / "pred" / stage / "eigen_disps.npy")
        assert disps.shape == (3, 64, 128) and disps.dtype == np.float32
        history = pd.read_csv(tmp_path / "results" / "kitti" / "train" / stage / "history.csv")
        assert history.step.iloc[-1] == {"teacher": 4, "student": 3, "finetune": 3}[stage]
    endo = pd.read_csv(tmp_path / "results" / "endo_eval.csv")
    assert list(zip(endo.stage, endo.sequence, strict=True)) == [
        (stage, "seq01") for stage in ("teacher", "student", "finetune", "constant")
    ]
    stats = endo[["residual_mean_mm", "residual_median_mm", "residual_rms_mm", "residual_p95_mm"]].to_numpy()
    assert np.isfinite(stats).all() and (stats > 0).all()
    assert (endo.residual_median_mm <= endo.residual_rms_mm).all()
    assert (endo.residual_rms_mm <= endo.residual_p95_mm * 1.5).all()
    assert (endo.points_registered >= 200).all() and np.isfinite(endo.truth_rotation_deg).all()
    assert ((endo.abs_rel > 0) & (endo.abs_rel < 1) & (endo.delta1 > 0) & (endo.delta1 <= 1)).all()
    assert (endo.patient == "p1").all() and (endo.split == "train").all()
    depth = np.load(tmp_path / "results" / "endo" / "pred" / "finetune" / "seq01" / "depth.npz")
    assert depth["depth"].dtype == np.float32 and depth["depth"].shape[0] == len(depth["frame_indexes"])
    new = tmp_path / "results" / "endo" / "new" / "seq01"  # endoscopy.predict.videos, 3 frames
    summary = json.loads((new / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["trained_on"] == ["seq01"]
    assert len(list((new / "depth").glob("*.png"))) == 3 and len(list((new / "clouds").glob("*.ply"))) == 3
    assert (new / "depth.mp4").stat().st_size > 1000
    for fig in (
        "results/kitti/report/depth_frames.png",
        "results/kitti/report/per_frame_abs_rel.png",
        "results/kitti/report/masking.png",
        "results/endo/report/depth/finetune/seq01.png",
        "results/endo/report/registration/finetune/seq01_on_ct.png",
        "results/endo/report/training_curves.png",
    ):
        assert (tmp_path / fig).stat().st_size > 10_000, fig
    again = snakemake("all", "-n", "--configfile", str(TINY), "--directory", str(tmp_path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    check_rerun_recipes(tmp_path)


def check_rerun_recipes(folder: Path) -> None:
    """The README's re-run recipes, as dry runs on a finished run: each plans exactly the jobs it
    promises."""

    def plan(*args: str, configs: tuple[str, ...] = ()) -> dict[str, int]:
        run = snakemake("all", "-n", *args, "--directory", str(folder), "--configfile", str(TINY), *configs)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        return planned_jobs(run.stdout + run.stderr)

    # -R train_student: the stage and everything downstream of it, nothing upstream
    jobs = plan("-R", "train_student")
    assert {"train_student", "finetune", "kitti_eval_table"} <= set(jobs)
    # student, finetune and its unmasked control
    assert jobs["predict_depth"] == jobs["evaluate_depth"] == jobs["predict_segmentation"] == 3
    assert not {"train_teacher", "make_demo_kitti", "precompute_depth_hints"} & set(jobs)
    # --until: stop after a stage
    jobs = plan("-R", "train_teacher", "--until", "train_student")
    assert set(jobs) == {"train_teacher", "train_student"}
    # a changed parameter of one stage re-runs that stage and its dependents only
    (folder / "finetune_lr.yaml").write_text("kitti:\n  train:\n    finetune:\n      lr: 3.0e-5\n")
    jobs = plan(configs=(str(folder / "finetune_lr.yaml"),))  # merged over the tiny config
    assert set(jobs) == {
        "all",
        "finetune",
        "train_unmasked",  # the control follows the fine-tune's settings
        "predict_depth",
        "predict_segmentation",
        "evaluate_depth",
        "kitti_eval_table",
        "kitti_seg_eval_table",
        "plot_kitti_depth",
        "plot_kitti_per_frame",
        "plot_kitti_masking",
        "plot_training_curves",
        "plot_kitti_eval",
        "eval_table_html",  # the tables on the report page
        "predict_pose",  # the fine-tune's pose network on the odometry export
        "evaluate_pose",
        "predict_images",  # the fine-tune's depth of the demo video
    }, jobs
    assert jobs["predict_depth"] == jobs["evaluate_depth"] == jobs["predict_segmentation"] == 2
    assert jobs["plot_kitti_depth"] == jobs["plot_kitti_per_frame"] == 1
    assert jobs["eval_table_html"] == 3  # kitti_eval, kitti_seg_eval, kitti_pose_eval (not endo_eval)
