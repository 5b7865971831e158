"""The endoscopy preparation rules in the DAG: demo, real-data layouts, the reference format,
and one real run of the three stages through Snakemake on a tiny demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from endo_synthetic import synthetic_scene

from workflow_scripts.endo.liu_format import write_liu_folder

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(ROOT / "Snakefile")]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def job_block(stdout: str, rule: str) -> str:
    """The dry run's lines of the (first) job of ``rule``: up to the next job or the job stats."""
    start = stdout.index(f"rule {rule}:")
    ends = [i for i in (stdout.find("rule ", start + 5), stdout.find("Job stats", start)) if i > 0]
    return stdout[start: min(ends)] if ends else stdout[start:]


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    lines = stdout[stdout.index("Job stats") :].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_demo_dag_has_the_three_stages_per_sequence(tmp_path):
    run = snakemake("all", "-n", "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["extract_frames"] == counts["run_sfm"] == counts["prepare_sfm_data"] == 2
    assert counts["make_demo_endoscopy"] == 1
    assert "results/endo/seq02/sfm_data.npz" in run.stdout


def test_real_data_root_with_a_video_and_a_frame_folder(tmp_path, endo_demo_small):
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(endo_demo_small["root"] / "p1" / "seq01.mp4", root / "caseA.mp4")
    shutil.copy(endo_demo_small["root"] / "camera.yaml", root / "camera.yaml")
    (root / "caseB").mkdir()
    (root / "caseB" / "00000001.jpg").write_bytes(b"")
    (root / "notes").mkdir()  # no images: not a sequence
    cfg = tmp_path / "real.yaml"
    cfg.write_text(yaml.safe_dump({"endoscopy": {"root": str(root)}}))
    run = snakemake("all", "-n", "--configfile", str(cfg), "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["extract_frames"] == 2 and "make_demo_endoscopy" not in counts
    assert "results/endo/caseA/frames" in run.stdout and "results/endo/caseB/frames" in run.stdout
    assert f"{root}/caseA.mp4" in run.stdout and "notes" not in run.stdout


def test_reference_format_enters_at_prepare_sfm_data(tmp_path):
    root = tmp_path / "liu_root"
    write_liu_folder(synthetic_scene(tmp_path / "frames"), root / "bag1_clip")
    cfg = tmp_path / "liu.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "endoscopy": {
                    "root": str(root),
                    "format": "liu",
                    "sfm_data": {"downsampling": 1.0, "network_downsampling": 16},
                }
            }
        )
    )
    run = snakemake(
        "results/endo/bag1_clip/sfm_data.npz",
        "--cores",
        "1",
        "--configfile",
        str(cfg),
        "--directory",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (
        "rule extract_frames" not in run.stdout + run.stderr and "rule run_sfm" not in run.stdout + run.stderr
    )
    summary = json.loads((tmp_path / "results/endo/bag1_clip/sfm_data.json").read_text())
    assert summary["source"] == "liu" and summary["views"] == 6


def test_tiny_demo_runs_the_three_stages(tmp_path):
    run = snakemake(
        "results/endo/seq01/sfm_data.npz",
        "--cores",
        "2",
        "--configfile",
        str(TINY),
        "--directory",
        str(tmp_path),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    seq = tmp_path / "results" / "endo" / "seq01"
    frames = sorted(p.name for p in (seq / "frames").glob("*.jpg"))
    assert frames == [f"{i:08d}.jpg" for i in range(0, 8, 2)]  # tiny demo: 8 frames, stride 2
    sfm = json.loads((seq / "sfm" / "summary.json").read_text())
    assert sfm["registered"] == 4
    with np.load(seq / "sfm_data.npz") as data:
        assert data["view_indexes"].tolist() == [0, 2, 4, 6] and data["input_size"].tolist() == [192, 256]
    for rule in ("extract_frames", "run_sfm", "prepare_sfm_data"):
        assert (tmp_path / "logs" / rule / "seq01.log").stat().st_size > 0
        assert (tmp_path / "benchmarks" / rule / "seq01.tsv").is_file()
    assert (tmp_path / "logs" / "run_sfm" / "seq01.colmap.log").stat().st_size > 0
    assert not list(seq.glob(".*"))  # no work folders left behind
