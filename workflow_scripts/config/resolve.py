"""The configuration a run actually uses, outside Snakemake (tests, benchmarks, ``show``).

Snakemake merges ``config.yaml`` and the ``--configfile`` files, then rules/common.smk puts the
demo overlay under them and validates with defaults. :func:`resolve` does the same for a plain
mapping, with the same schema (``jsonschema``, filling defaults as Snakemake's ``validate``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

from jsonschema import Draft202012Validator, validators

from workflow_scripts.config.overlay import apply_demo_overlay, read_yaml

__all__ = ["ROOT", "resolve", "load_user_config", "fill_defaults", "first_error"]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "rules" / "schemas" / "config.schema.yaml"
DEMO_OVERLAY = ROOT / "config" / "demo.yaml"


def _with_defaults(cls):
    check_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        for name, sub in properties.items():
            if isinstance(instance, dict) and "default" in sub:
                instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


def first_error(config: Mapping, schema_path: Path = SCHEMA) -> str | None:
    """The first schema error of ``config`` as one line naming the key, or None."""
    schema = read_yaml(schema_path)
    errors = sorted(
        Draft202012Validator(schema).iter_errors(copy.deepcopy(dict(config))), key=lambda e: e.path
    )
    if not errors:
        return None
    err = errors[0]
    key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"config key {key}: {err.message}"


def fill_defaults(config: dict, schema_path: Path = SCHEMA) -> dict:
    """Validate ``config`` in place against the schema, adding every missing default; raises
    ``jsonschema.ValidationError`` naming the first bad key."""
    schema = read_yaml(schema_path)
    _with_defaults(Draft202012Validator)(schema).validate(config)
    return config


def merge_over(base: dict, top: Mapping) -> dict:
    """``top`` merged over ``base`` in place as Snakemake merges --configfile files: nested
    mappings key by key, everything else replaced."""
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_over(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_user_config(*configfiles: str | Path) -> dict:
    """config.yaml with the given files merged over it, as Snakemake reads them."""
    config = read_yaml(ROOT / "config.yaml")
    for path in configfiles:
        merge_over(config, read_yaml(path))
    return config


def resolve(user: Mapping | None = None) -> dict:
    """The effective configuration of ``user`` (default: config.yaml alone): demo overlay under
    it for the branches on the demo data, then every default."""
    config = copy.deepcopy(dict(user if user is not None else load_user_config()))
    apply_demo_overlay(config, read_yaml(DEMO_OVERLAY))
    return fill_defaults(config)


def training_seed(config: Mapping) -> int:
    """The seed of the training rules of a resolved ``config``: ``train_seed``, else ``seed``
    (which also renders the demo and draws the splits)."""
    return config["seed"] if config.get("train_seed") is None else config["train_seed"]
