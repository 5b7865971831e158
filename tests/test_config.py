"""The configuration: one source of defaults (the option dataclasses), the generated schema and
reference page in step with it, the demo overlay, and errors that name the key."""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from models.networks.spec import NetworkSpec
from tests.conftest import ROOT
from workflow_scripts.config.generate import generated_files
from workflow_scripts.config.model import WorkflowConfig
from workflow_scripts.config.overlay import apply_demo_overlay, merge_under
from workflow_scripts.config.resolve import resolve, training_seed
from workflow_scripts.config.schema import reference_rows
from workflow_scripts.training.endo_options import EndoTeacher
from workflow_scripts.training.options import KittiCommon
from workflow_scripts.util.options import ConfigError, load_options, to_plain

SCHEMA = str(ROOT / "rules" / "schemas" / "config.schema.yaml")


def _check(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    validate(cfg, schema=SCHEMA)  # as rules/common.smk: fills in the defaults
    return cfg


def test_generated_schema_and_reference_are_up_to_date():
    for path, text in generated_files().items():
        assert path.read_text() == text, (
            f"{path} is out of date: run python -m workflow_scripts.config generate"
        )


def test_defaults_fill_an_empty_config_and_equal_the_dataclass_defaults():
    filled = _check({})
    assert filled == to_plain(WorkflowConfig())
    assert filled["kitti"]["train"]["common"]["size"] == [192, 640]  # the references', not the demo's
    assert filled["endoscopy"]["train"]["teacher"]["network"]["kind"] == "unet"
    assert load_options(WorkflowConfig, filled) == WorkflowConfig()


def test_every_option_is_documented_and_reaches_the_reference_page():
    rows = list(reference_rows(WorkflowConfig))
    assert len(rows) > 150
    page = (ROOT / "docs" / "configuration.md").read_text()
    for key, _, doc, _ in rows:
        assert len(doc) > 10, key
        assert f"`{key}`" in page, key
    with pytest.raises(ValueError, match="documentation"):
        from workflow_scripts.util.options import option

        option(1, "")


def test_a_nested_section_keeps_its_field_default_for_missing_keys():
    teacher = load_options(EndoTeacher, {"network": {"width": 0.5}}, "endoscopy.train.teacher")
    assert teacher.network == NetworkSpec(kind="unet", width=0.5)  # not the class default, resnet
    assert (
        _check({"endoscopy": {"train": {"teacher": {"network": {"width": 0.5}}}}})["endoscopy"]["train"][
            "teacher"
        ]["network"]["kind"]
        == "unet"
    )


@pytest.mark.parametrize(
    ("section", "where", "message"),
    [
        ({"sise": [64, 64]}, "kitti.train.common", "unknown key(s) ['sise']"),
        ({"size": [64]}, "kitti.train.common", "kitti.train.common.size: expected 2 values"),
        ({"batch_size": 2.5}, "kitti.train.common", "kitti.train.common.batch_size: 2.5 is not of type int"),
        ({"unit": "hours"}, "kitti.train.common", "'hours' is not one of ['steps', 'epochs']"),
        ({"automask": "yes"}, "kitti.train.common", "automask: 'yes' is not of type bool"),
    ],
)
def test_load_options_names_the_key(section, where, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_options(KittiCommon, section, where)


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda c: c["demo"]["kitti"].update(fram=3), "'fram' was unexpected"),
        (lambda c: c.update(sed=1), "'sed' was unexpected"),
        (lambda c: c["kitti"]["train"]["teacher"].update(lenght=3), "'lenght' was unexpected"),
        (lambda c: c["demo"]["kitti"]["drives"][0].update(speeed=3.0), "'speeed' was unexpected"),
    ],
)
def test_unknown_keys_are_rejected_by_name(default_config, mutate, named):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(WorkflowError, match=re.escape(named)):
        _check(cfg)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda c: c["demo"]["kitti"].update(baseline="abc"), "['demo']['kitti']['baseline']"),
        (lambda c: c.update(seed=1.5), "['seed']"),
        (lambda c: c.update(train_seed=-1), "['train_seed']"),
        (
            lambda c: c["demo"]["kitti"]["drives"][0].update(frames="60"),
            "['demo']['kitti']['drives'][0]['frames']",
        ),
        (lambda c: c["demo"]["endoscopy"].update(image_size=[480]), "['demo']['endoscopy']['image_size']"),
        (
            lambda c: c["demo"]["kitti"]["dates"].update({"2011-01-03": [375, 1242]}),
            "['demo']['kitti']['dates']",
        ),
        (lambda c: c["demo"]["kitti"]["drives"][0].pop("date"), "['demo']['kitti']['drives'][0]"),
        (lambda c: c["kitti"]["gt"].update(splits=["eigen", "kitti"]), "['kitti']['gt']['splits'][1]"),
        (lambda c: c["kitti"]["jpeg"].update(quality=101), "['kitti']['jpeg']['quality']"),
        (
            lambda c: c["demo"]["kitti"].update(test_drives=["2011_01_02/2011_01_01_drive_0003_sync"]),
            "['demo']['kitti']['test_drives'][0]",
        ),
    ],
)
def test_wrong_values_are_rejected_with_the_key_path(default_config, mutate, path):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(WorkflowError) as err:
        _check(cfg)
    assert path in str(err.value)


def test_the_demo_overlay_applies_under_the_user_and_only_to_demo_branches():
    demo = {
        "kitti": {"train": {"common": {"size": [64, 192], "batch_size": 4}}},
        "endoscopy": {"frames": {"stride": 2}},
    }
    user = {"kitti": {"root": "/data/kitti"}, "endoscopy": {"root": "", "frames": {"stride": 3}}}
    assert apply_demo_overlay(user, demo) == ["endoscopy"]
    assert "train" not in user["kitti"]  # real KITTI data: the references' defaults
    assert user["endoscopy"]["frames"]["stride"] == 3  # the user's value wins
    cfg = {"kitti": {"train": {"common": {"batch_size": 2}}}}
    merge_under(cfg, demo)
    assert cfg["kitti"]["train"]["common"] == {"batch_size": 2, "size": [64, 192]}


def test_the_effective_demo_config_runs_the_demo_sizes(default_config):
    assert default_config == resolve()
    assert default_config["kitti"]["train"]["common"]["size"] == [64, 192]
    assert default_config["kitti"]["depth_hints"]["size"] == [160, 512]
    assert default_config["endoscopy"]["train"]["student"]["network"] == dataclasses.asdict(
        NetworkSpec(kind="fc_densenet57", width=0.5, init="default")
    )
    real = resolve({"kitti": {"root": "/data/kitti"}, "endoscopy": {"root": "/data/endo"}})
    assert real["kitti"]["train"]["common"]["size"] == [192, 640]
    assert real["endoscopy"]["frames"]["stride"] == 1


def test_snakemake_stops_on_a_typo_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("demo:\n  kitti:\n    baselne: 0.5\n")
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "all", "-n", "--configfile", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "'baselne' was unexpected" in run.stdout + run.stderr


def test_config_files_load_with_safe_load():
    paths = [
        ROOT / "config.yaml",
        *sorted((ROOT / "config").rglob("*.yaml")),
        *sorted((ROOT / "tests" / "configs").glob("*.yaml")),
    ]
    for path in paths:
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict), path
        _check(resolve(data) if path.parent.name == "configs" else data)


def test_config_check_names_the_file_line_and_key(tmp_path):
    def check(*files):
        return subprocess.run(
            [sys.executable, "-m", "workflow_scripts.config", "check", *map(str, files)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    broken, typo, good = tmp_path / "broken.yaml", tmp_path / "typo.yaml", tmp_path / "good.yaml"
    broken.write_text("kitti:\n  root: [unclosed\n")
    typo.write_text("kitti:\n  train:\n    teacher: {lenght: 3}\n")
    good.write_text("kitti:\n  train:\n    teacher: {length: 3}\n")
    run = check(broken)
    assert (
        run.returncode == 1 and f"{broken}: cannot be read as YAML" in run.stderr and "line 2" in run.stderr
    )
    run = check(good, typo)
    assert run.returncode == 1 and f"{typo}: config key kitti.train.teacher:" in run.stderr
    assert "'lenght' was unexpected" in run.stderr
    assert check(good).returncode == 0


def test_train_seed_reseeds_the_training_rules_only():
    """train_seed re-initialises the networks on the same data: the demo and the splits keep
    seed."""
    default = resolve({})
    assert default["train_seed"] is None and training_seed(default) == default["seed"] == 2026
    other = resolve({"train_seed": 7})
    assert training_seed(other) == 7 and other["seed"] == 2026
    assert training_seed(resolve({"seed": 5})) == 5
    train_rules = [ROOT / "rules" / "train.smk", ROOT / "rules" / "semantic.smk"]
    seeds = [line.strip() for path in train_rules for line in path.read_text().splitlines()
             if "seed=" in line]
    assert seeds == ["seed=TRAIN_SEED,"] * 4  # train_teacher, train_student, finetune, train_unmasked
