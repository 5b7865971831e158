"""The project installs from its own files: pins agree, README commands and CI agree."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([\w.]+)", line).groups()
            pins[name.lower()] = version
    return pins


def test_requirements_are_pinned_and_match_the_conda_env():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert req["torch"] == "2.13.0" and req["snakemake"].startswith("9.")
    assert "torchvision" not in req
    env = yaml.safe_load((ROOT / "envs" / "depth-workflow.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip) == req


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme.split("## ", 2)[1], flags=re.S)
    commands = [ln for b in blocks for ln in b.splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)
    make = (ROOT / "Makefile").read_text()
    assert "system-deps.sh" in make and "requirements.txt" in make
