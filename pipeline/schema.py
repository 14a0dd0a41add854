"""Turn plain YAML data into typed dataclass objects, with errors a user can act on.

The experiment config is a tree of dataclasses (:mod:`pipeline.config`). This module knows
nothing about that tree: it validates any mapping against any dataclass type, following the type
hints of its fields. Supported field types are ``bool``, ``int``, ``float``, ``str``,
``Literal[...]``, ``Optional[T]``, ``list[T]``, ``tuple[T, ...]``, ``dict[str, T]`` and nested
dataclasses. An int is accepted where a float is expected; nothing else is coerced (``"3"`` is
not an int, ``1`` is not a bool), because a silently converted value is how a wrong experiment
gets run.

Errors are :class:`ConfigError` and name the dotted key, the file and line it came from, and,
for an unknown key, the nearest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A config value that cannot be used; the message says which, where, and what would work."""


# A config is a few hundred values; YAML aliases can make a tiny file expand to billions.
MAX_YAML_NODES = 100_000

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 60, 60
_SHORT.maxtuple = _SHORT.maxlist = _SHORT.maxdict = _SHORT.maxset = 4


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to a few dozen characters, without walking all of a large value: error
    messages quote what they reject, and a value may be huge."""
    return _SHORT.repr(value)


def check_yaml_size(node: yaml.Node | None, where: str, limit: int = MAX_YAML_NODES) -> None:
    """Raise :class:`ConfigError` if the composed YAML ``node`` holds more than ``limit`` nodes
    once its aliases are expanded. Stops counting at the limit, so a bomb costs nothing."""
    count, stack = 0, [node] if node is not None else []
    while stack:
        n = stack.pop()
        count += 1
        if count > limit:
            raise ConfigError(f"{where}: more than {limit} values once YAML aliases (*name) are "
                              "expanded; a config needs a few hundred: write the values out")
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack += (k, v)
        elif isinstance(n, yaml.SequenceNode):
            stack += n.value


def yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """``(line, "what is wrong (column c)")`` of a YAML error on one line, where PyYAML's own text
    spans seven with the source quoted twice."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if not problem:
        return None, " ".join(str(exc).split())
    if mark is None:
        return None, problem
    return mark.line + 1, f"{problem} (column {mark.column + 1})"


def check_unique_keys(node: yaml.Node | None, where: str, lines: bool = True) -> None:
    """Raise :class:`ConfigError` naming both lines when a YAML mapping sets one key twice
    (``yaml.safe_load`` keeps the last silently: a second ``data:`` block would drop the first,
    a second ``_base_`` switch the config). Keys merged in by ``<<`` may be overridden."""
    stack, seen_nodes = [node] if node is not None else [], set()
    while stack:
        n = stack.pop()
        if id(n) in seen_nodes:
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    line = k.start_mark.line + 1
                    if k.value in first:
                        also = f" (also on line {first[k.value]})" if lines else ""
                        raise ConfigError(f"{where}{f':{line}' if lines else ''}: key "
                                          f"{short_repr(k.value)} is set twice{also}; keep one")
                    first[k.value] = line
                stack += (k, v)
        elif isinstance(n, yaml.SequenceNode):
            stack += n.value


def key_lines(text: str) -> dict[str, int]:
    """Map every dotted key of a YAML mapping document to its 1-based line number.

    Used only to point error messages at the right line; values are read with ``yaml.safe_load``.
    """
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    dotted = f"{prefix}.{k.value}" if prefix else str(k.value)
                    lines[dotted] = k.start_mark.line + 1
                    walk(v, dotted)

    if node is not None:
        walk(node, "")
    return lines


@dataclasses.dataclass
class Origin:
    """Where values come from, for error messages: files (with key lines) and overrides.

    ``lines`` maps a dotted key to the ``(file, line)`` that set it last (a config may inherit
    keys from a base file); keys without an entry are reported against ``file``.
    """

    file: Path | None = None
    lines: dict[str, tuple[Path, int]] = dataclasses.field(default_factory=dict)
    overrides: frozenset[str] = frozenset()

    def blamed(self, prefix: str, message: str) -> str | None:
        """The key below ``prefix`` that a section's validation ``message`` names first (as
        ``train.crop`` or ``crop``), an override before a file's line; None if it names none."""
        def first(keys) -> str | None:
            hits = []
            for key in keys:
                parts = key[len(prefix):].split(".")
                for n in range(len(parts)):
                    found = re.search(rf"(?<![\w]){re.escape('.'.join(parts[n:]))}(?![\w])",
                                      message)
                    if found:
                        hits.append((found.start(), -len(parts) + n, key))
                        break
            return min(hits)[2] if hits else None

        under = [k for k in self.overrides if k.startswith(prefix)]
        return first(under) or first([k for k in self.lines if k.startswith(prefix)])

    def where(self, key: str) -> str:
        if key in self.overrides:
            return f"command-line override {key}"
        if key in self.lines:
            file, line = self.lines[key]
            return f"{file}:{line}: {key}"
        if self.file is None:
            return f"key {key}"
        return f"{self.file}: {key}"


def field_paths(cls: type, prefix: str = "") -> list[str]:
    """All dotted keys that a dataclass type accepts (nested dataclasses expanded)."""
    paths = []
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        paths.append(dotted)
        inner = _dataclass_in(_hints(cls)[f.name])
        if inner is not None:
            paths.extend(field_paths(inner, dotted + "."))
    return paths


def section_type(cls: type, name: str) -> type | None:
    """The dataclass type of field ``name`` of ``cls`` (a nested section), else None."""
    if not any(f.name == name for f in dataclasses.fields(cls)):
        return None
    return _dataclass_in(_hints(cls)[name])


def suggest(name: str, candidates: list[str]) -> str:
    """A ``did you mean`` phrase for ``name`` among ``candidates`` (empty when nothing is close)."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def build(cls: type, data: Any, origin: Origin, prefix: str = "") -> Any:
    """Validate ``data`` (a mapping from YAML) against dataclass ``cls`` and instantiate it.

    Missing fields take their dataclass default; a field without default is required.
    After construction, an optional ``validate(self)`` method on the dataclass may raise
    ``ValueError`` for constraints between fields; it is reported against ``prefix``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin.where(prefix.rstrip('.') or '<top>')} must be a mapping "
            f"(key: value lines), got {type(data).__name__}"
        )
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            dotted = f"{prefix}{key}"
            raise ConfigError(
                f"{origin.where(dotted)}: unknown key"
                + suggest(str(key), names)
                + f" (valid keys here: {', '.join(names)})"
            )
    kwargs = {}
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        if f.name in data:
            kwargs[f.name] = convert(hints[f.name], data[f.name], origin, dotted)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            inner = _dataclass_in(hints[f.name])
            if inner is not None and _all_defaults(inner):
                kwargs[f.name] = build(inner, {}, origin, dotted + ".")
            else:
                raise ConfigError(f"{origin.where(dotted)}: required key is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as exc:
            key = origin.blamed(prefix, str(exc)) or prefix.rstrip(".") or "<top>"
            raise ConfigError(f"{origin.where(key)}: {exc}") from None
    return obj


def convert(tp: Any, value: Any, origin: Origin, key: str) -> Any:
    """Check ``value`` against the type hint ``tp`` and return it converted (nested types built)."""
    origin_tp = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin_tp in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for a in non_none:
            try:
                return convert(a, value, origin, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{origin.where(key)}: {short_repr(value)} is not a valid "
                          f"{_type_name(tp)}")
    if origin_tp is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"{origin.where(key)}: {short_repr(value)} is not one of {', '.join(map(repr, args))}"
            + suggest(str(value), [str(a) for a in args])
        )
    if dataclasses.is_dataclass(tp):
        return build(tp, value, origin, key + ".")
    if origin_tp is list or origin_tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{origin.where(key)}: expected a list, got {short_repr(value)}")
        if origin_tp is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(
                    f"{origin.where(key)}: expected a list of {len(args)} values, "
                    f"got {short_repr(value)}"
                )
            return tuple(convert(a, v, origin, f"{key}[{i}]") for i, (a, v) in
                         enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [convert(item, v, origin, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin_tp is tuple else items
    if origin_tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{origin.where(key)}: expected a mapping, got {short_repr(value)}")
        key_tp, val_tp = args if args else (Any, Any)
        return {convert(key_tp, k, origin, key): convert(val_tp, v, origin, f"{key}.{k}")
                for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{origin.where(key)}: {value!r} is not a finite number")
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    else:
        raise TypeError(f"unsupported type {tp!r} in config schema at {key}")
    raise ConfigError(f"{origin.where(key)}: expected {_type_name(tp)}, got {short_repr(value)}")


def to_plain(obj: Any) -> Any:
    """A dataclass tree back to plain dicts/lists (for YAML output and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass inside ``tp`` (``T`` or ``Optional[T]``), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        for a in typing.get_args(tp):
            if dataclasses.is_dataclass(a):
                return a
    return None


def _all_defaults(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number",
                "bool": "true or false"}.get(tp.__name__, tp.__name__)
    return str(tp).replace("typing.", "")
