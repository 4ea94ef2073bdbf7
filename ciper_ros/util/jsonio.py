"""Result JSON, one way: atomic writes, numpy values as plain numbers, NaN kept.

NaN and infinities are written as ``NaN`` / ``Infinity`` (``json``'s default, which
``json.loads`` reads back): a metric that could not be computed stays visible as NaN
instead of failing the write or turning into a number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ciper_ros.util.atomic import atomic_write_text


def _plain(o):
    """Convert what ``json`` cannot write by itself: numpy scalars and arrays, paths."""
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, 'tolist') and hasattr(o, 'dtype'):       # numpy scalar or array
        return o.tolist()
    raise TypeError(f'{type(o).__name__} is not JSON serialisable: {o!r}')


def dumps_json(obj, *, indent: int | None = 1) -> str:
    """``obj`` as JSON text with a final newline."""
    return json.dumps(obj, indent=indent, default=_plain) + '\n'


def write_json(path: str | os.PathLike, obj, *, indent: int | None = 1) -> Path:
    """Write ``obj`` to ``path`` atomically (parents created); return the path."""
    path = Path(path)
    atomic_write_text(path, dumps_json(obj, indent=indent))
    return path
