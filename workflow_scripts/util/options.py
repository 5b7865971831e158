"""Options as documented dataclass fields, and one loader for every config section.

Every config key is a field made with :func:`option`: its default and its documentation live
there and nowhere else (the JSON schema and ``docs/configuration.md`` are generated from the
fields, see :mod:`workflow_scripts.config.schema`). Fields made with plain ``field()`` or a bare
default are *internal*: set by the workflow (a seed, a thread count), never read from a config
file.

:func:`load_options` turns a config section (a plain mapping, as a rule passes it in
``params:``) into its dataclass: enums and literals checked, lists turned into tuples, nested
sections built recursively, and an unknown key named with its full path.

Example:
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Jpeg:
    ...     quality: int = option(92, "JPEG quality (1-100).", minimum=1, maximum=100)
    >>> load_options(Jpeg, {"quality": 90}, "kitti.jpeg")
    Jpeg(quality=90)
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

__all__ = [
    "ConfigError",
    "option",
    "is_config_field",
    "config_fields",
    "field_default",
    "load_options",
    "to_plain",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that does not fit its option (names the key and what is allowed)."""


def option(
    default: Any = MISSING, doc: str = "", *, factory: Callable[[], Any] | None = None, **schema: Any
) -> Any:
    """A config field: its default (or ``factory`` for mutable ones), its documentation, and extra
    JSON-schema keywords (``minimum=0``, ``maxItems=2``, ...) that the schema states for it."""
    if not doc:
        raise ValueError("every option needs its documentation")
    metadata = {"doc": " ".join(doc.split()), "schema": schema}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def is_config_field(f: Field) -> bool:
    """Whether ``f`` is read from the config (made with :func:`option`)."""
    return "doc" in f.metadata


def config_fields(cls: type) -> list[Field]:
    """The config fields of a dataclass, in declaration order."""
    return [f for f in dataclasses.fields(cls) if is_config_field(f)]


def field_default(f: Field) -> Any:
    """The default value of a field (calling its factory), or ``MISSING``."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def to_plain(value: Any) -> Any:
    """A value as YAML/JSON data: enums by value, tuples as lists, config dataclasses as dicts."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in config_fields(type(value))}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    return value


def load_options(cls: type[T], data: Mapping[str, Any] | None, where: str = "", **internal: Any) -> T:
    """Build the dataclass ``cls`` from a config section.

    Args:
        cls: a dataclass whose config fields were made with :func:`option`.
        data: the section (keys missing from it take their defaults).
        where: the section's dotted path in the config, for error messages (e.g. "kitti.gt").
        internal: values of internal (non-config) fields, e.g. ``seed=...``.
    Raises:
        ConfigError: an unknown key, or a value of the wrong type or outside the allowed set.
    """
    data = dict(data or {})
    names = {f.name for f in config_fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"config {where or cls.__name__}: unknown key(s) {unknown}; known keys: {sorted(names)}"
        )
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name in internal:
            kwargs[f.name] = internal.pop(f.name)
        elif f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], key, field_default(f))
    if internal:
        raise TypeError(f"{cls.__name__} has no internal field(s) {sorted(internal)}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str, default: Any = MISSING) -> Any:
    """``value`` as type ``tp`` (recursively), or a ConfigError naming ``where``."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for a in options:
            try:
                return _convert(a, value, where, default)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"config {where}: {value!r} fits none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"config {where}: {value!r} is not one of {list(args)}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"config {where}: {value!r} is not one of {[m.value for m in tp]}") from None
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where, default)
    if origin in (tuple, list):
        return _convert_sequence(origin, args, value, where)
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config {where}: expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return _convert_scalar(tp, value, where)


def _convert_dataclass(tp: type, value: Any, where: str, default: Any) -> Any:
    if isinstance(value, tp):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"config {where}: expected a mapping of {tp.__name__} keys, got {value!r}")
    base = {}
    if dataclasses.is_dataclass(default) and not isinstance(default, type):  # this field's own default
        base = {f.name: getattr(default, f.name) for f in config_fields(type(default))}
    return load_options(tp, {**base, **value}, where)


def _convert_sequence(origin: type, args: tuple, value: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"config {where}: expected a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"config {where}: expected {len(args)} values, got {list(value)}")
        return tuple(
            _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    item = args[0] if args else Any
    out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(out) if origin is tuple else out


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"config {where}: unsupported option type {tp!r}")
    if not ok:
        raise ConfigError(f"config {where}: {value!r} is not of type {tp.__name__}")
    return value
