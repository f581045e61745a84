"""Typed dataclasses from plain mappings (YAML, JSON, command lines): each value checked against its
field's annotation, each unknown key an error naming it with the closest known key."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from rmdt.errors import ConfigError
from rmdt.suggest import did_you_mean


def read_yaml(path, what: str = "config file"):
    """The YAML document at ``path`` ({} when empty); a missing file or bad YAML is a ConfigError
    naming the file (``what`` says what kind of file it is)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None


def check_type(value, annotation, key: str):
    """Returns ``value`` converted to the field's type, or raises ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return check_type(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if annotation is typing.Any:
        return value
    expected = origin or annotation
    if expected is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # YAML 1.1 reads 3e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{key} must be {getattr(expected, '__name__', expected)}, got {value!r}", key)
    return value


def build(cls, values, prefix: str):
    """``cls(**values)`` with every value checked; nested dataclass fields are built from mappings.

    ``cls.unknown_key_hint(key)``, where a class defines it, explains an unknown key better than the
    closest name can (e.g. a setting written in the wrong section).
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}", prefix.rstrip("."))
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            hint = getattr(cls, "unknown_key_hint", lambda _key: None)(key) or did_you_mean(key, names, prefix)
            raise ConfigError(f"unknown config key {prefix}{key}{hint}", prefix + key)
        if dataclasses.is_dataclass(hints[key]) and not dataclasses.is_dataclass(value):
            kwargs[key] = build(hints[key], value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = check_type(value, hints[key], prefix + key)
    return cls(**kwargs)


def merge(base: dict, update: dict, atomic: typing.Container[str] = ()) -> dict:
    """``base`` updated by ``update``, mappings merged key by key except under the keys in ``atomic``."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in atomic:
            merged[key] = merge(merged[key], value, atomic)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict:
    """``"training.steps=2000"`` -> ``{"training": {"steps": 2000}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    dotted, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw else None
    for part in reversed(dotted.strip().split(".")):
        value = {part: value}
    return value
