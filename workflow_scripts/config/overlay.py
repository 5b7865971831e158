"""Overlay files merged under a configuration (light: imported when the workflow starts).

The demo's settings (``config/demo.yaml``: small images, short training) apply to a branch only
while it runs on the demo data (its ``root`` is empty). They sit *under* what the user gave:
``config.yaml``, ``--configfile`` files and ``--config`` values win over them, and the schema's
defaults fill in whatever none of them sets. Mappings are merged key by key; lists and values
are replaced as a whole, as Snakemake merges ``--configfile`` files.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["merge_under", "read_yaml", "apply_demo_overlay", "DEMO_BRANCHES"]

# config section of a branch -> whether it runs on the demo data (its root is empty)
DEMO_BRANCHES = ("kitti", "endoscopy")


def merge_under(config: MutableMapping[str, Any], overlay: Mapping[str, Any]) -> MutableMapping[str, Any]:
    """Fill ``config`` in place with the keys of ``overlay`` that it does not set (recursively
    into mappings both have); ``config``'s own values always win. Returns ``config``."""
    for key, value in overlay.items():
        if key not in config:
            config[key] = copy.deepcopy(value)
        elif isinstance(config[key], MutableMapping) and isinstance(value, Mapping):
            merge_under(config[key], value)
    return config


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping (``yaml.safe_load``); an error names the file."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:  # a file handle: yaml's marks name the file
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"{path}: cannot be read as YAML ({detail}). Fix the file's syntax") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: holds a {type(data).__name__}, not a mapping of config keys. "
                         "Write it as 'key: value' lines")
    return data


def apply_demo_overlay(config: MutableMapping[str, Any], demo: Mapping[str, Any]) -> list[str]:
    """Merge the demo overlay's section of every branch that runs on the demo data under
    ``config`` (in place); the overlay's other top-level keys apply when any branch does.
    Returns the branches that run on the demo data."""
    on_demo = [b for b in DEMO_BRANCHES if not (config.get(b) or {}).get("root")]
    for key, value in demo.items():
        if key in DEMO_BRANCHES and key not in on_demo:
            continue
        if key not in DEMO_BRANCHES and not on_demo:
            continue
        merge_under(config, {key: value})
    return on_demo
