"""The kitti config section: defaults map onto the option dataclasses; bad values are refused."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT
from workflow_scripts.kitti.depth_hints import HintOptions
from workflow_scripts.kitti.frame_filter import Arithmetic, FilterOptions
from workflow_scripts.kitti.gt_depth import DepthSource, DuplicateIndex, GtOptions
from workflow_scripts.kitti.gt_export import GtConfig
from workflow_scripts.kitti.sgm_fusion import Sampling
from workflow_scripts.util.options import load_options


def test_defaults_are_the_references_and_the_demo_setting(default_config):
    kitti = default_config["kitti"]
    gt = load_options(GtConfig, kitti["gt"])
    assert (gt.depth, gt.duplicates) == (DepthSource.VELODYNE, DuplicateIndex.REFERENCE)
    assert isinstance(gt, GtOptions) and gt.splits == ("eigen", "eigen_benchmark")
    hints = load_options(HintOptions, kitti["depth_hints"])
    assert (hints.focal, hints.baseline, hints.sampling) == (0.58, 0.1, Sampling.REFERENCE)
    assert hints.size == (160, 512)  # the demo overlay; the reference's default: (320, 1024)
    assert HintOptions().size == (320, 1024)
    assert load_options(FilterOptions, kitti["filter"]) == FilterOptions(arithmetic=Arithmetic.SIGNED)


@pytest.mark.parametrize("path, value", [
    (("gt", "duplicates"), "sub2ind"),
    (("gt", "splits"), ["eigen", "kitti"]),
    (("filter", "arithmetic"), "int8"),
    (("splits", "source"), "eigen_zhou"),
    (("depth_hints", "focal"), 0),
    (("jpeg", "quality"), 101),
])
def test_schema_refuses_bad_values(default_config, path, value):
    schema = yaml.safe_load((ROOT / "rules" / "schemas" / "config.schema.yaml").read_text())
    config = copy.deepcopy(default_config)
    jsonschema.validate(config, schema)
    section = config["kitti"]
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


def test_hint_width_must_hold_the_disparity_range():
    with pytest.raises(ValueError, match="width 160 must exceed 161"):
        HintOptions(size=(64, 160))
