"""CIPER: cross-view image retrieval and 3-DoF pose estimation transformer.

``from ciper_ros.model import build_model, load_model`` (imported on first use, PEP 562).
"""

from __future__ import annotations

import importlib

_EXPORTS = {'build_model': 'build', 'load_model': 'build', 'ModelConfig': 'build',
            'CIPER': 'ciper', 'default_model_path': 'build'}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
