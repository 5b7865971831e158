"""What CI checks of the code itself: ruff, snakefmt, the import contracts (layers point one way,
no import cycles), Snakemake's linter, and the rule -> script naming. The import contracts are
also shown to catch a wrong import on a copy of the packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
# rules whose script serves more than one rule (named after what it does)
SHARED_SCRIPTS = {"kitti_eval_table": "join_tables", "sfm_summary_table": "join_tables",
                  "plot_kitti_eval": "plot_eval_metrics", "plot_endo_eval": "plot_eval_metrics"}


def _run(*cmd: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _tool(name: str) -> str:
    exe = BIN / name
    if not exe.exists():
        pytest.fail(f"{exe} is missing: install requirements.txt (it pins {name})")
    return str(exe)


def test_ruff_is_clean():
    run = _run(_tool("ruff"), "check", ".")
    assert run.returncode == 0, run.stdout + run.stderr


def test_snakefmt_is_clean():
    run = _run(_tool("snakefmt"), "--check", "Snakefile", "rules")
    assert run.returncode == 0, run.stdout + run.stderr


def test_snakemake_lint_is_clean():
    run = _run(sys.executable, "-m", "snakemake", "--lint")
    assert run.returncode == 0 and "Congratulations" in run.stdout + run.stderr, run.stdout + run.stderr


def test_import_contracts_hold():
    run = _run(_tool("lint-imports"), env={"PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("models/geometry.py", "import workflow_scripts.util  # noqa", "never imports the workflow BROKEN"),
    ("workflow_scripts/endo/scene.py", "from workflow_scripts.endo import sfm  # noqa",
     "no import cycles between sibling modules or packages BROKEN"),
])
def test_import_contracts_catch_a_wrong_import(tmp_path, module, line, broken):
    """On a copy of the packages, one wrong import breaks the contract that forbids it."""
    for name in ("models", "workflow_scripts"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "splits"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}\n")
    run = _run(_tool("lint-imports"), "--no-cache", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode != 0 and broken in run.stdout, run.stdout + run.stderr


def _rule_scripts() -> dict[str, str]:
    """rule name -> script stem, from every rule file."""
    out = {}
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            script = re.search(r'script:\s*\n\s*"\.\./workflow_scripts/(\w+)\.py"', block)
            if script:
                out[name] = script.group(1)
    return out


def test_each_rule_script_is_named_after_its_rule_and_names_its_library():
    scripts = _rule_scripts()
    assert len(scripts) > 30
    for rule, stem in scripts.items():
        assert stem == SHARED_SCRIPTS.get(rule, rule), f"rule {rule} runs workflow_scripts/{stem}.py"
        text = (ROOT / "workflow_scripts" / f"{stem}.py").read_text()
        assert re.match(r'"""Rules? ', text), f"{stem}.py: the docstring starts by naming its rule(s)"
        # Snakemake puts its preamble before the script's first line: a __future__ import fails
        assert "from __future__" not in text, f"{stem}.py: a rule script cannot import from __future__"
    used = set(scripts.values())
    orphans = [p.name for p in (ROOT / "workflow_scripts").glob("*.py")
               if p.stem not in used and p.name != "__init__.py"]
    assert not orphans, f"rule scripts no rule runs: {orphans}"


def test_source_files_stay_under_400_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in sorted(ROOT.rglob("*.py")) + sorted(ROOT.rglob("*.smk"))
            if not {".venv", "results", "resources", ".snakemake"} & set(p.relative_to(ROOT).parts)
            and (n := len(p.read_text().splitlines())) > 400]
    assert not long, long
