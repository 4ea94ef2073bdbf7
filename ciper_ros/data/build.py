"""One entry point for the real-dataset loaders, sized by a model's config."""

from __future__ import annotations

from dataclasses import fields

from ciper_ros.data.common import DatasetError
from ciper_ros.util.config import check_mapping, check_types, unknown_keys

KINDS = ('vigor', 'kitti', 'ford')


def build_dataset(spec: dict, model_config):
    """Build a dataset from ``{'kind': 'vigor'|'kitti'|'ford', 'root': path, **config fields}``.

    The ground image size and aerial crop size come from the model's config (a
    :class:`~ciper_ros.model.config.ModelConfig`) unless the spec sets them; any other key
    must be a field of that dataset's config class.
    """
    spec = check_mapping(spec, 'a dataset spec')
    kind = spec.pop('kind', None)
    root = spec.pop('root', None)
    if kind not in KINDS:
        raise DatasetError(f'dataset kind must be one of {KINDS}, got {kind!r}')
    if not root:
        raise DatasetError(f'the {kind} dataset needs a root folder (root: ...)')
    if kind == 'vigor':
        from ciper_ros.data.vigor import VigorConfig as Config
        from ciper_ros.data.vigor import VigorDataset as Dataset
    elif kind == 'kitti':
        from ciper_ros.data.kitti import KittiConfig as Config
        from ciper_ros.data.kitti import KittiDataset as Dataset
    else:
        from ciper_ros.data.ford import FordConfig as Config
        from ciper_ros.data.ford import FordDataset as Dataset
    unknown = unknown_keys(Config, spec)
    if unknown:
        raise DatasetError(f'unknown {kind} option(s) {unknown}; known: '
                           f'{sorted(f.name for f in fields(Config))}')
    check_types(Config, spec, f'{kind} dataset')
    spec.setdefault('ground_size', tuple(model_config.ground_size))
    spec.setdefault('aerial_px', int(model_config.aerial_size[0]))
    for key in ('ground_size', 'cities', 'logs'):
        if isinstance(spec.get(key), list):
            spec[key] = tuple(spec[key])
    return Dataset(root, Config(**spec))
