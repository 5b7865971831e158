"""Shared fixtures: small demo datasets generated once per test session, paths to ../shared.

The demo fixtures use the generators of the workflow itself (no files are shipped), with the
default config.yaml values except for fewer frames, so tests see the same data formats that
`make demo` produces.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from workflow_scripts.config.resolve import resolve
from workflow_scripts.demo import endo_demo, kitti_demo
from workflow_scripts.util.options import load_options

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def default_config() -> dict:
    """The configuration a plain run uses: config.yaml, the demo overlay and every default
    (workflow_scripts.config.resolve, as rules/common.smk does it)."""
    return resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the project; tests using it skip in a user's fresh clone."""
    if not SHARED.is_dir():
        pytest.skip("../shared (development data) is not present")
    return SHARED


@pytest.fixture(scope="session")
def kitti_demo_small(tmp_path_factory, default_config) -> dict:
    """Two dates (188x621 and 185x613), one drive each, 5 frames: the default demo config
    with fewer frames and a static world (no moving traffic: the temporal-warp checks need
    brightness constancy, which moving cars and their shadows break; kitti_demo_traffic has
    them). Returns {'root': Path, 'config': KittiDemoConfig, 'seed': int}."""
    section = copy.deepcopy(default_config["demo"]["kitti"])
    section["drives"] = [
        {"date": "2011_01_01", "drive": "0001", "frames": 5, "speed": 8.0, "stop": False},
        {"date": "2011_01_02", "drive": "0003", "frames": 5, "speed": 9.0, "stop": False},
    ]
    section["traffic"] = False
    cfg = load_options(kitti_demo.KittiDemoConfig, section)
    root = tmp_path_factory.mktemp("kitti_demo") / "kitti_raw"
    kitti_demo.generate(root, cfg, seed=default_config["seed"], workers=2)
    return {"root": root, "config": cfg, "seed": default_config["seed"]}


@pytest.fixture(scope="session")
def kitti_demo_traffic(tmp_path_factory, default_config) -> dict:
    """One demo drive of 5 frames with the default moving traffic (a car leading at 80-90 % of the camera's
    speed, oncoming cars) and the optional slow van and crossing cars. Returns {'root': Path,
    'config': KittiDemoConfig, 'seed': int}."""
    section = copy.deepcopy(default_config["demo"]["kitti"])
    section["dates"] = {"2011_01_01": [375, 1242]}
    section["slow_van"] = section["crossing"] = True
    section["drives"] = [{"date": "2011_01_01", "drive": "0001", "frames": 5, "speed": 8.0, "stop": False}]
    cfg = load_options(kitti_demo.KittiDemoConfig, section)
    root = tmp_path_factory.mktemp("kitti_traffic") / "kitti_raw"
    kitti_demo.generate(root, cfg, seed=default_config["seed"], workers=2)
    return {"root": root, "config": cfg, "seed": default_config["seed"]}


@pytest.fixture(scope="session")
def endo_demo_small(tmp_path_factory, default_config) -> dict:
    """One demo sequence of 12 frames at the default camera. Returns {'root': Path,
    'config': EndoDemoConfig, 'seed': int}."""
    section = copy.deepcopy(default_config["demo"]["endoscopy"])
    section["sequences"] = [{"name": "seq01", "frames": 12, "start": 6.0, "step": 0.3}]
    cfg = load_options(endo_demo.EndoDemoConfig, section)
    root = tmp_path_factory.mktemp("endo_demo") / "endoscopy"
    endo_demo.generate(root, cfg, seed=default_config["seed"], workers=2)
    return {"root": root, "config": cfg, "seed": default_config["seed"]}


@dataclass(frozen=True)
class TinyRun:
    """A finished `snakemake all` of the reduced demo: its folder and the process' result."""

    folder: Path
    run: subprocess.CompletedProcess

    def check(self) -> None:
        """Fail with the end of the log unless the run succeeded."""
        assert self.run.returncode == 0, self.run.stdout[-3000:] + self.run.stderr[-3000:]


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory) -> TinyRun:
    """`snakemake all --cores 2 --resources gpu=1` on the reduced demo (tests/configs/tiny.yaml),
    once per session: tests/test_workflow.py checks its outputs and tests/test_slurm.py compares a
    SLURM run of the same DAG with it. Users of it only read the run's resources/ and results/."""
    folder = tmp_path_factory.mktemp("tiny_demo")
    cmd = [sys.executable, "-m", "snakemake", "all", "--cores", "2", "--resources", "gpu=1", "--configfile",
           str(ROOT / "tests" / "configs" / "tiny.yaml"), "--directory", str(folder), "--snakefile",
           str(ROOT / "Snakefile")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    return TinyRun(folder, run)


def pytest_terminal_summary(terminalreporter) -> None:
    """After a run of the fault-injection suite: each case's rule, time to fail and message."""
    suite = sys.modules.get("tests.fault_injection")  # imported only when the suite ran
    if suite is None or not suite.FAIL_TIMES:
        return
    terminalreporter.write_sep("-", "bad inputs: time to fail (seconds, whole snakemake run)")
    for case, (rule, seconds, line) in suite.FAIL_TIMES.items():
        terminalreporter.write_line(f"{seconds:6.1f}  {case:<28} {rule:<24} {line}")


@pytest.fixture(scope="session")
def kitti_full_tree(tmp_path_factory) -> Path:
    """A full-size KITTI raw tree of empty files (tests/dry_runs.build_full_tree), once per session."""
    from tests.dry_runs import build_full_tree

    return build_full_tree(tmp_path_factory.mktemp("kitti_full") / "kitti_raw")
