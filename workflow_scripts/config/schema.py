"""The JSON schema and the reference page of the config, generated from the option dataclasses.

``rules/schemas/config.schema.yaml`` (what Snakemake validates the config against, filling in
defaults) and ``docs/configuration.md`` (every key with its default and meaning) are both made
here from the :func:`~workflow_scripts.util.options.option` fields, so a key is documented and
given its default in exactly one place. A nested section's defaults are those of the field's own
default value (e.g. the endoscopy teacher's ``network`` defaults to a U-Net although the network
dataclass alone defaults to a ResNet).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import MISSING
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from workflow_scripts.util.options import config_fields, field_default, to_plain

__all__ = ["json_schema", "dataclass_schema", "reference_rows", "markdown_reference"]

SCHEMA_HEADER = (
    "# GENERATED from the option dataclasses by `python -m workflow_scripts.config generate`: do not edit.\n"
    "# Each key's default and documentation live in its dataclass field (see docs/configuration.md).\n"
)


def json_schema(root: type, description: str) -> dict:
    """The draft 2020-12 schema of the config whose root section is the dataclass ``root``."""
    body = dataclass_schema(root, None)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "description": description, **body}


def dataclass_schema(cls: type, instance: Any) -> dict:
    """Schema of a section: closed object, one property per config field with its default
    (taken from ``instance`` when given, else from the field)."""
    hints = get_type_hints(cls)
    props, required = {}, []
    for f in config_fields(cls):
        default = getattr(instance, f.name) if instance is not None else field_default(f)
        if default is MISSING:
            required.append(f.name)
        sub = {"description": f.metadata["doc"], **_type_schema(hints[f.name], default)}
        sub.update(f.metadata["schema"])
        props[f.name] = sub
    out = {"type": "object", "additionalProperties": False, "properties": props}
    return {**out, "required": required} if required else out


def _type_schema(tp: Any, default: Any) -> dict:
    """Schema of one value of type ``tp``, with ``default`` (nested sections default to ``{}``,
    so that validation fills in their keys one by one)."""
    out = _bare_type_schema(tp, default)
    if default is not MISSING:
        out["default"] = {} if _is_section(default) else to_plain(default)
    return out


def _is_section(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _bare_type_schema(tp: Any, default: Any) -> dict:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = (
            _bare_type_schema(options[0], MISSING)
            if len(options) == 1
            else {"anyOf": [_bare_type_schema(a, MISSING) for a in options]}
        )
        if type(None) not in args:
            return inner
        if "enum" in inner:
            return {**inner, "enum": [*inner["enum"], None]}
        if "type" in inner and isinstance(inner["type"], str):
            return {**inner, "type": [inner["type"], "null"]}
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is Literal:
        return {"enum": list(args)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if dataclasses.is_dataclass(tp):
        return dataclass_schema(tp, default if _is_section(default) else None)
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = [_bare_type_schema(a, MISSING) for a in args]
            same = all(i == items[0] for i in items)
            out = {"type": "array", "minItems": len(args), "maxItems": len(args)}
            return {**out, "items": items[0]} if same else {**out, "prefixItems": items, "items": False}
        return {"type": "array", "items": _bare_type_schema(args[0], MISSING) if args else {}}
    if origin in (dict, Mapping, typing.Mapping):
        return {"type": "object", "additionalProperties": _bare_type_schema(args[1], MISSING)}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is Any:
        return {}
    raise TypeError(f"no schema for option type {tp!r}")


def reference_rows(cls: type, prefix: str = "", instance: Any = None) -> Iterator[tuple[str, Any, str, bool]]:
    """(dotted key, default, documentation, is a section) of every config key below ``cls``,
    depth first; a section yields its own row (default None) before its keys."""
    hints = get_type_hints(cls)
    for f in config_fields(cls):
        key = f"{prefix}{f.name}"
        default = getattr(instance, f.name) if instance is not None else field_default(f)
        tp = hints[f.name]
        if _is_section(default) and dataclasses.is_dataclass(tp):
            yield key, None, f.metadata["doc"], True
            yield from reference_rows(tp, f"{key}.", default)
        else:
            yield key, to_plain(default), f.metadata["doc"], False


def _cell(value: Any) -> str:
    if value is MISSING:
        return "(required)"
    text = "null" if value is None else str(value).replace("'", "")
    if isinstance(value, bool):
        text = str(value).lower()
    if isinstance(value, str):
        text = f'"{value}"'
    return f"`{text}`".replace("|", "\\|")


def _text(doc: str) -> str:
    """Documentation as Markdown table text: ``<...>`` placeholders kept visible, pipes escaped."""
    return doc.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def markdown_reference(cls: type, overlays: Mapping[str, Mapping], intro: str) -> str:
    """``docs/configuration.md``: one table per top-level section; ``overlays`` maps a column
    title (e.g. "demo") to an overlay config whose values are shown beside the defaults."""
    lines = [intro.rstrip(), ""]
    for f in config_fields(cls):
        default = field_default(f)
        lines += [f"## `{f.name}`", "", _text(f.metadata["doc"]), ""]
        if not _is_section(default):
            lines += [f"Default: {_cell(to_plain(default))}.", ""]
            continue
        head = ["key", "default", *overlays, "meaning"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, value, doc, section in reference_rows(get_type_hints(cls)[f.name], f"{f.name}.", default):
            if section:
                lines.append(f"| **`{key}`** |" + " |" * (len(head) - 2) + f" {_text(doc)} |")
                continue
            extra = [
                _cell(_lookup(o, key)) if _lookup(o, key) is not MISSING else "" for o in overlays.values()
            ]
            lines.append("| " + " | ".join([f"`{key}`", _cell(value), *extra, _text(doc)]) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _lookup(data: Mapping, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return MISSING
        data = data[part]
    return data
