"""Helpers for config dataclasses loaded from YAML/JSON: unknown keys and wrong types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
import types
import typing

from ciper_ros.util.errors import UserError


def unknown_keys(cls, d: dict) -> list[str]:
    """Keys of ``d`` that are not fields of dataclass ``cls``, sorted."""
    return sorted(set(d) - {f.name for f in fields(cls)})


def check_keys(cls, d: dict, what: str) -> None:
    """Raise a UserError naming any key of ``d`` that is not a field of dataclass ``cls``."""
    unknown = unknown_keys(cls, d)
    if unknown:
        raise UserError(f'unknown {what} config keys: {unknown}; known: '
                        f'{sorted(f.name for f in fields(cls))}')


def check_mapping(value, what: str) -> dict:
    """Return ``value`` as a dict, or raise a UserError saying a mapping was expected."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f'{what} must be a mapping of key: value, got '
                        f'{type(value).__name__} {_short(value)}')
    return dict(value)


def check_types(cls, d: Mapping, what: str) -> None:
    """Raise a UserError naming the first value of ``d`` that does not fit its field's type.

    Checks what YAML can get wrong: a number given as a string (PyYAML reads ``1e-4``
    without a dot as a string), a list where a number belongs, a scalar where a list or a
    mapping belongs. Ints are accepted for float fields, lists for tuple fields; booleans
    are not numbers here.
    """
    hints = typing.get_type_hints(cls)
    for key, value in d.items():
        if key in hints and not _fits(value, hints[key]):
            hint = ''
            if isinstance(value, str) and _parses_as_float(value):
                hint = f' (YAML reads {value} as a string: write it with a dot, e.g. 1.0e-4)'
            raise UserError(f'{what} config key {key!r} must be {_describe(hints[key])}, got '
                            f'{type(value).__name__} {_short(value)}{hint}')


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _fits(value, tp) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(
                _fits(v, a) for v, a in zip(value, args, strict=True))
        return all(_fits(v, args[0]) for v in value)
    if tp is dict or origin is dict:
        return isinstance(value, Mapping)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return ' or '.join(_describe(a) for a in args)
    if tp is type(None):
        return 'null'
    if tp is float:
        return 'a number'
    if tp is int:
        return 'an integer'
    if tp is bool:
        return 'true or false'
    if tp is str:
        return 'a string'
    if tp in (list, tuple) or origin in (list, tuple):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f'a list of {len(args)} ({", ".join(_describe(a) for a in args)})'
        return 'a list'
    if tp is dict or origin is dict:
        return 'a mapping'
    return getattr(tp, '__name__', str(tp))


def json_plain(value):
    """Return a config value as JSON and checkpoints hold it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value
