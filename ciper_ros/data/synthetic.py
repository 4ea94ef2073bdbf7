"""Synthetic-city pairs as items of the common schema (:mod:`ciper_ros.data.common`)."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from ciper_ros.data.common import collate, make_item

__all__ = ['collate', 'PairTensors']


class PairTensors(Dataset):
    """Wrap a pair source (``SyntheticPairs`` or ``ShardPairs``) into model-ready items.

    ``group`` is the city seed: retrieval galleries are per city.
    """

    def __init__(self, pairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        p = self.pairs[i]
        return make_item(ground=p['ground'], aerial=p['aerial'], offset_xy_m=p['offset_xy_m'],
                         yaw_rad=float(p['yaw_rad']), yaw_prior_rad=float(p['yaw_prior_rad']),
                         half_side_m=float(p['aerial'].shape[0] * p['m_per_px'] / 2.0),
                         camera_latlon_deg=np.asarray(p['camera_latlon_deg'], np.float64),
                         group=int(p['city_seed']),
                         aerial_negative=p.get('aerial_negative'),
                         aerial_far=p.get('aerial_far'))
