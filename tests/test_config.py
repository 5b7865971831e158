"""config.yaml and its schema: the default validates, typos and wrong types are named."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from tests.conftest import ROOT

SCHEMA = str(ROOT / "rules" / "schemas" / "config.schema.yaml")


def _check(cfg: dict) -> None:
    validate(copy.deepcopy(cfg), schema=SCHEMA)


def test_default_config_is_valid(default_config):
    _check(default_config)


@pytest.mark.parametrize(("mutate", "named"), [
    (lambda c: c["demo"]["kitti"].update(fram=3), "'fram' was unexpected"),
    (lambda c: c.update(sed=1), "'sed' was unexpected"),
    (lambda c: c["demo"]["kitti"]["lidar"].update(beam=64), "'beam' was unexpected"),
    (lambda c: c["demo"]["kitti"]["drives"][0].update(speeed=3.0), "'speeed' was unexpected"),
])
def test_unknown_keys_are_rejected_by_name(default_config, mutate, named):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(WorkflowError, match=re.escape(named)):
        _check(cfg)


@pytest.mark.parametrize(("mutate", "path"), [
    (lambda c: c["demo"]["kitti"].update(baseline="abc"), "['demo']['kitti']['baseline']"),
    (lambda c: c.update(seed=1.5), "['seed']"),
    (lambda c: c["demo"]["kitti"]["drives"][0].update(frames="60"), "['demo']['kitti']['drives'][0]['frames']"),
    (lambda c: c["demo"]["endoscopy"].update(image_size=[480]), "['demo']['endoscopy']['image_size']"),
    (lambda c: c["demo"]["kitti"]["dates"].update({"2011-01-03": [375, 1242]}), "['demo']['kitti']['dates']"),
    (lambda c: c["kitti"].pop("root"), "['kitti']"),
])
def test_wrong_types_are_rejected_with_the_key_path(default_config, mutate, path):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(WorkflowError) as err:
        _check(cfg)
    assert path in str(err.value)


def test_snakemake_stops_on_a_typo_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("demo:\n  kitti:\n    baselne: 0.5\n")
    run = subprocess.run([sys.executable, "-m", "snakemake", "all", "-n", "--configfile", str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "'baselne' was unexpected" in run.stdout + run.stderr


def _documented_keys(lines: list[str]) -> tuple[list[str], list[str]]:
    """Split the mapping keys of config.yaml into documented / undocumented ones.

    A key is documented when it has an inline comment, or when walking up over sibling keys
    of the same indentation reaches a comment line; a leaf key (no children) is also covered
    by its parent's documentation.
    """
    key_re = re.compile(r"^(\s*)([\w\"-]+):(.*)$")
    documented, missing, stack = [], [], []  # stack of (indent, documented)
    for i, line in enumerate(lines):
        m = key_re.match(line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        own = "#" in rest
        j = i - 1
        while not own and j >= 0 and lines[j].strip():
            prev = key_re.match(lines[j])
            if lines[j].strip().startswith("#"):
                own = True
            elif not (prev and len(prev.group(1)) == indent):
                break
            j -= 1
        is_leaf = rest.strip() not in ("",) or i + 1 >= len(lines) or \
            len(lines[i + 1]) - len(lines[i + 1].lstrip()) <= indent
        ok = own or (is_leaf and bool(stack) and stack[-1][1])
        (documented if ok else missing).append(f"{i + 1}: {line.strip()}")
        stack.append((indent, ok))
    return documented, missing


def test_every_config_key_is_commented():
    lines = (ROOT / "config.yaml").read_text().splitlines()
    documented, missing = _documented_keys(lines)
    assert len(documented) > 30
    assert not missing, "config.yaml keys without a comment:\n" + "\n".join(missing)
    # the checker itself catches an undocumented key
    _, caught = _documented_keys(["a:  # doc", "  b:", "    c: 1", "", "d: 2"])
    assert caught == ["2: b:", "3: c: 1", "5: d: 2"]


def test_config_files_load_with_safe_load():
    for path in [ROOT / "config.yaml", *sorted((ROOT / "tests" / "configs").glob("*.yaml"))]:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
