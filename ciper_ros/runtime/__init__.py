"""Runtime: what runs on the vehicle, independent of ROS (tile index, localizer, backends).

The public API is re-exported here and imported on first use (PEP 562), so importing a
light module such as ``ciper_ros.runtime.gnss`` does not load torch::

    from ciper_ros.runtime import open_localizer, Prior
    loc = open_localizer(index='city_index')
    result = loc.localize(rgb, Prior(48.137, 11.575, sigma_m=10.0))
"""

from __future__ import annotations

from ciper_ros.util.lazy import lazy_exports

_EXPORTS = {
    'Localizer': 'localizer', 'LocalizerConfig': 'localizer', 'Prior': 'localizer',
    'LocalizationResult': 'localizer', 'open_localizer': 'assemble',
    'FramePipeline': 'pipeline', 'PipelineConfig': 'pipeline', 'Frame': 'pipeline',
    'TileIndex': 'index', 'build_index': 'index',
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
