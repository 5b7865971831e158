"""The generated files of the config: the JSON schema and ``docs/configuration.md``."""

from __future__ import annotations

from pathlib import Path

import yaml

from workflow_scripts.config.model import WorkflowConfig
from workflow_scripts.config.overlay import read_yaml
from workflow_scripts.config.resolve import DEMO_OVERLAY, ROOT, SCHEMA
from workflow_scripts.config.schema import SCHEMA_HEADER, json_schema, markdown_reference

__all__ = ["ROOT", "SCHEMA", "REFERENCE", "DEMO_OVERLAY", "generated_files"]

REFERENCE = ROOT / "docs" / "configuration.md"

_DESCRIPTION = ("Configuration of the self-supervised depth workflow. Every object is closed "
                "(additionalProperties: false) so that a misspelt key is an error, not a silent default; "
                "validation fills in the defaults.")
_INTRO = """# Configuration reference

Generated from the option dataclasses by `python -m workflow_scripts.config generate` (a test fails when
it is out of date): each key's default and meaning live in one place, its field in the code.

- `config.yaml` holds only what you set: the data roots. A `--configfile` file is merged over it
  key by key (nested mappings merged, lists replaced), and validation
  (`rules/schemas/config.schema.yaml`) fills in every default below and rejects unknown keys.
- A branch whose `root` is empty runs on the embedded demo data, with the demo's small settings
  from `config/demo.yaml` (column *demo*) under whatever you set.
- Units: KITTI in metres, endoscopy and CT in millimetres, images in pixels.
"""


def generated_files() -> dict[Path, str]:
    """Path -> the text it must hold."""
    schema = json_schema(WorkflowConfig, _DESCRIPTION)
    schema_text = SCHEMA_HEADER + yaml.safe_dump(schema, sort_keys=False, width=110, allow_unicode=True)
    reference = markdown_reference(WorkflowConfig, {"demo": read_yaml(DEMO_OVERLAY)}, _INTRO)
    return {SCHEMA: schema_text, REFERENCE: reference}
