"""The endoscopy evaluation rules in the DAG (dry runs): the demo's constant baseline, the
trained stages only once configured, the CT and the manual pose file of real data."""

from __future__ import annotations

import yaml
from test_endo_workflow import job_block, job_counts, snakemake


def test_demo_eval_dag_has_every_stage_and_the_constant_baseline_per_sequence(tmp_path):
    run = snakemake("results/endo_eval.csv", "-n", "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["predict_endo_constant"] == 2 and counts["predict_endo_depth"] == 6
    for rule in ("export_point_clouds", "register_ct", "evaluate_endo_depth"):
        assert counts[rule] == 8, (rule, counts)
    assert counts["endo_eval_table"] == 1
    assert "results/endo/registration/constant/seq02.json" in run.stdout
    assert "input: results/endo/pointclouds/constant/seq01/fused.ply, results/endo/seq01/sfm_data.npz, " \
        "resources/demo/endoscopy" in run.stdout  # the demo folder holds the CTs and the true poses
    # the test patient p2 (seq02) is in no training stage (config/demo.yaml: split.test [p2])
    teacher = job_block(run.stdout, "train_teacher")
    assert "results/endo/seq01/sfm_data.npz" in teacher and "seq02" not in teacher
    run = snakemake("all", "-n", "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr
    new = job_block(run.stdout, "predict_endo_video")  # the test patient's video, as a new video
    assert "results/endo/train/finetune/model.pt, resources/demo/endoscopy" in new
    assert "results/endo/new/seq02" in new
    for stage in ("train_teacher", "train_student", "finetune"):
        assert "seq02" not in job_block(run.stdout, stage)
    assert "results/endo/pred/finetune/seq02/depth.npz" in run.stdout


def test_real_data_ct_surface_and_manual_poses(tmp_path):
    root = tmp_path / "data"
    (root / "caseA").mkdir(parents=True)
    (root / "caseA" / "00000001.jpg").write_bytes(b"")
    (root / "ct_surface.ply").write_bytes(b"")
    (root / "camera.yaml").write_text("")
    (root / "caseA_pose.txt").write_text("1, 0, 0, 0, 1, 0, 0, 0\n")
    cfg = tmp_path / "real.yaml"
    cfg.write_text(yaml.safe_dump({"endoscopy": {
        "root": str(root),
        "register": {"initial_poses": str(root / "{seq}_pose.txt")},
        "evaluate": {"stages": ["constant"]},
    }}))
    run = snakemake("all", "-n", "--configfile", str(cfg), "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert job_counts(run.stdout)["register_ct"] == 1
    assert f"{root}/caseA_pose.txt" in run.stdout and f"{root}/ct_surface.ply" in run.stdout
    assert "gt/caseA" not in run.stdout
    # without a CT surface: depth metrics only (no registration), and a warning that says so
    (root / "ct_surface.ply").unlink()
    run = snakemake("all", "-n", "--configfile", str(cfg), "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert "register_ct" not in counts and counts["endo_eval_table"] == 1
    assert "no CT surface for patient (endoscopy.root) (caseA): depth metrics only" in run.stdout + run.stderr
