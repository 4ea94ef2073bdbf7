"""Helpers for config dataclasses loaded from YAML/JSON."""

from __future__ import annotations

from dataclasses import fields


def unknown_keys(cls, d: dict) -> list[str]:
    """Keys of ``d`` that are not fields of dataclass ``cls``, sorted."""
    return sorted(set(d) - {f.name for f in fields(cls)})


def check_keys(cls, d: dict, what: str) -> None:
    """Raise a ValueError naming any key of ``d`` that is not a field of dataclass ``cls``."""
    unknown = unknown_keys(cls, d)
    if unknown:
        raise ValueError(f'unknown {what} config keys: {unknown}')
