"""Lazy re-exports for package ``__init__`` modules (PEP 562).

The public API sits where users look for it, without importing torch when a light submodule
is all a caller needs.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """Return ``(__getattr__, __dir__, __all__)`` importing ``exports[name]`` on first use.

    ``exports`` maps a public name to the submodule (relative to ``package``) defining it.
    """
    import sys

    def getattr_(name: str):
        if name not in exports:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(f'{package}.{exports[name]}'), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return getattr_, dir_, sorted(exports)
