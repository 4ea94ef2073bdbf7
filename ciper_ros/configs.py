"""Helpers for config dataclasses loaded from YAML/JSON."""

from __future__ import annotations

from dataclasses import fields


def check_keys(cls, d: dict, what: str) -> None:
    """Raise a ValueError naming any key of ``d`` that is not a field of dataclass ``cls``."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f'unknown {what} config keys: {sorted(unknown)}')
