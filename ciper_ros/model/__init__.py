"""CIPER: cross-view image retrieval and 3-DoF pose estimation transformer.

``from ciper_ros.model import build_model, load_model`` (imported on first use, PEP 562).
"""

from __future__ import annotations

from ciper_ros.util.lazy import lazy_exports

_EXPORTS = {'build_model': 'build', 'load_model': 'build', 'ModelConfig': 'config',
            'CIPER': 'ciper', 'default_model_path': 'build'}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
