"""One source of truth for options: dataclass fields are the YAML keys and the command-line flags.

A recipe declares a dataclass; `parse_config` reads `--config file.yaml`, then applies `--key value`
flags on top. Every field carries its help text in `metadata["help"]`, which `--help` prints. Unknown
keys are errors that name the closest valid key, because a silently ignored typo (``lerning_rate``)
is the most expensive bug a training config can have.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nlp_transfer.errors import ConfigError

T = TypeVar("T")


def opt(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with help text (mutable defaults are copied per instance)."""
    if isinstance(default, (dict, list)):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs
        )
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def closest(name: str, choices: list[str]) -> str:
    """`; did you mean 'x'?` or an empty string, for error messages."""
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML or CLI value to the field's declared type, or say which key is wrong."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional or inner is Any:
            return None
        raise ConfigError(f"config key {key!r} may not be empty")
    origin = typing.get_origin(inner)
    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if inner is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if inner is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if inner is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin is list or inner is list:
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.startswith("[") else [v for v in value.split(",") if v]
            if not isinstance(value, list):
                raise ValueError
            (item_tp,) = typing.get_args(inner) or (Any,)
            return [coerce(v, item_tp, key) for v in value]
        if origin is dict or inner is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key {key!r}: cannot read {value!r} as {_type_name(tp)}") from e
    return value


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    name = getattr(inner, "__name__", str(inner))
    return f"{name} or null" if optional else name


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        f.type = hints[f.name]
        out[f.name] = f
    return out


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build `cls` from a mapping, rejecting unknown keys with the closest valid one."""
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown {where} key {key!r}{closest(key, list(fields))}")
        kwargs[key] = coerce(value, fields[key].type, key)
    cfg = cls(**kwargs)
    check = getattr(cfg, "validate", None)
    if check is not None:
        check()
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(e)}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines with a caret drawing; keep the line, column and problem."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _parse_flags(cls: type, argv: list[str]) -> tuple[str | None, dict[str, Any]]:
    """`--key value`, `--key=value`, bare `--flag` for booleans, `--dict_key.sub value`."""
    fields = _fields(cls)
    config_path, overrides = None, {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r} (options look like --key value)")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        top = key.split(".", 1)[0]
        if key != "config" and top not in fields:
            raise ConfigError(f"unknown option --{key}{closest(top, list(fields))}")
        if not eq:
            is_bool = key != "config" and _unwrap_optional(fields[top].type)[0] is bool and "." not in key
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if is_bool and (nxt is None or nxt.startswith("--")):
                value = "true"
            elif nxt is None:
                raise ConfigError(f"option --{key} needs a value")
            else:
                value, i = nxt, i + 1
        if key == "config":
            config_path = value
        elif "." in key:
            sub = key.split(".", 1)[1]
            overrides.setdefault(top, {})[sub] = yaml.safe_load(value)
        else:
            overrides[key] = value
        i += 1
    return config_path, overrides


def help_text(cls: type) -> str:
    lines = [f"options (YAML keys and --flags) of {cls.__name__}:"]
    for name, f in _fields(cls).items():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"  --{name} ({_type_name(f.type)}, default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines)


def parse_config(cls: type[T], argv: list[str]) -> T:
    """YAML file (`--config`) first, then flags on top; `--help` prints every option."""
    if "-h" in argv or "--help" in argv:
        print(help_text(cls))
        raise SystemExit(0)
    config_path, overrides = _parse_flags(cls, argv)
    data = read_yaml(config_path) if config_path else {}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return from_dict(cls, data)
