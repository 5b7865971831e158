"""Helpers of the fault-injection suite (tests/test_bad_inputs*.py, issue 14): run the real rules
on a damaged copy of the demo data and check how the run fails.

Every case is checked three ways (:func:`assert_failed`):
1. Snakemake exits non-zero;
2. the failed job's log ends with the one readable line ``<file>: <problem>. <fix>`` (the
   traceback above it), and Snakemake's output holds that line followed by ``(traceback: <log>)``;
3. nothing that looks finished is left where the failed rule writes: none of its outputs, and no
   hidden temporary sibling (``.<name>.*``) of them.

Each run has a timeout (the whole process group is killed then), so a hang fails the test. The
seconds from start to exit are kept in :data:`FAIL_TIMES` for the closing table of a pytest run
(``pytest_terminal_summary`` in tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
KITTI_DEMO = Path("resources/demo/kitti_raw")
ENDO_DEMO = Path("resources/demo/endoscopy")
# <file>: <problem>. <fix> -- the file has no ": " in it; the problem ends at the last ". "
READABLE_LINE = re.compile(r"^(?P<file>\S[^:]*): (?P<problem>.+)\. (?P<fix>\S.*)$")

# case -> (rule, seconds from start to exit, the message line): printed after a pytest run
FAIL_TIMES: dict[str, tuple[str, float, str]] = {}


@dataclass
class Run:
    """A finished ``snakemake`` run of one case."""

    returncode: int
    output: str  # stdout and stderr, interleaved as a user sees them
    seconds: float
    folder: Path


def case_folder(tmp_path: Path, *, kitti: Path | None = None, endo: Path | None = None) -> Path:
    """A run folder holding copies of the given demo trees where the workflow expects the
    generated demo (resources/demo/...); Snakemake does not regenerate an output it has no
    metadata for, so the DAG starts from these copies."""
    if kitti is not None:
        shutil.copytree(kitti, tmp_path / KITTI_DEMO)
    if endo is not None:
        shutil.copytree(endo, tmp_path / ENDO_DEMO)
    return tmp_path


def write_config(folder: Path, name: str, settings: dict) -> Path:
    """A YAML file of ``settings`` in ``folder`` (merged over the tiny config with --configfile)."""
    path = folder / name
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def snakemake(folder: Path, target: str, *configs: Path, extra: tuple[str, ...] = (), timeout: float = 120,
              popen_hook=None) -> Run:
    """Run ``snakemake <target>`` on ``folder`` with the tiny config and ``configs`` merged over it,
    2 cores and the GPU resource, as a user would. The process group is killed after ``timeout``
    seconds and the test fails (a hang). ``popen_hook(process)``, if given, is called while the
    run is going (it may kill it)."""
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", "2", "--resources", "gpu=1",
           "--directory", str(folder), "--snakefile", str(ROOT / "Snakefile"), *extra,
           "--configfile", str(TINY), *map(str, configs)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    start = time.monotonic()
    # its own process group (session), so that a timeout or a kill ends the jobs too
    proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        if popen_hook is not None:
            popen_hook(proc)
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"snakemake {target} did not end within {timeout} s (a hang?):\n{output[-3000:]}")
    run = Run(proc.returncode, output, time.monotonic() - start, folder)
    # the premise of every case: the copied demo tree is used as it is, never generated again
    assert not re.search(r"^(local)?rule make_demo_", output, re.M), output[-3000:]
    return run


def last_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").rstrip("\n").splitlines()
    return lines[-1] if lines else ""


def assert_failed(run: Run, case: str, rule: str, log: str, outputs: list[str], file: str | Path,
                  *phrases: str) -> str:
    """The three checks of a failed case (module docstring); ``log`` and ``outputs`` relative to
    the run folder, ``file`` = the bad file the line must start with, ``phrases`` = what the
    problem and fix must say. Returns the readable line (also kept in FAIL_TIMES)."""
    tail = run.output[-4000:]
    assert run.returncode != 0, tail
    log_path = run.folder / log
    assert log_path.is_file(), f"no log {log}:\n{tail}"
    line = last_line(log_path)
    match = READABLE_LINE.match(line)
    assert match, f"the log of {rule} does not end with '<file>: <problem>. <fix>': {line!r}"
    assert match["file"] == str(file), (match["file"], str(file))
    for phrase in phrases:
        assert phrase in line, (phrase, line)
    assert "Traceback (most recent call last)" in log_path.read_text(), "the traceback stays in the log"
    assert f"{line}\n(traceback: {log})" in run.output, f"Snakemake's output lacks the line:\n{tail}"
    assert f"Error in rule {rule}:" in run.output, tail
    assert_nothing_finished(run.folder, outputs)
    FAIL_TIMES[case] = (rule, run.seconds, line)
    return line


def assert_nothing_finished(folder: Path, outputs: list[str]) -> None:
    """No output of a failed rule and no temporary sibling (``.<name>...``) of one is left."""
    for rel in outputs:
        path = folder / rel
        assert not path.exists(), f"{rel} was left behind by the failed job"
        if path.parent.is_dir():
            stem = path.name.split(".")[0]
            leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{stem}")]
            assert not leftovers, f"temporary files left beside {rel}: {leftovers}"


def assert_startup_error(run: Run, case: str, *phrases: str) -> str:
    """A configuration error: non-zero exit before any job ran, the message names ``phrases``
    (the key, the file); no results/ or logs/ folder was created. Returns the message line."""
    tail = run.output[-4000:]
    assert run.returncode != 0, tail
    assert "Job stats" not in run.output and not (run.folder / "results").exists(), tail
    assert not (run.folder / "logs").exists(), tail
    line = next((x for x in run.output.splitlines() if phrases[0] in x), "")
    for phrase in phrases:
        assert phrase in run.output, (phrase, tail)
    FAIL_TIMES[case] = ("(startup)", run.seconds, line.strip())
    return line
