"""Synthetic-city pairs as torch tensors for training and evaluation."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class PairTensors(Dataset):
    """Wrap a pair source (``SyntheticPairs`` or ``ShardPairs``) into model-ready tensors.

    Item: ``ground`` (3, H, W) and ``aerial`` (3, S, S) float in [0, 1]; ``xy`` (2,) camera
    offset normalised by the crop half-side (east, north); ``yaw`` and ``yaw_prior`` (NaN when
    unknown) in radians; ``half_side_m``.
    """

    def __init__(self, pairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        p = self.pairs[i]
        half = float(p['aerial'].shape[0] * p['m_per_px'] / 2.0)
        return {
            'ground': torch.from_numpy(np.ascontiguousarray(p['ground'].transpose(2, 0, 1)))
            .float().div_(255.0),
            'aerial': torch.from_numpy(np.ascontiguousarray(p['aerial'].transpose(2, 0, 1)))
            .float().div_(255.0),
            'xy': torch.from_numpy(np.asarray(p['offset_xy_m'], np.float32) / half),
            'yaw': torch.tensor(float(p['yaw_rad']), dtype=torch.float32),
            'yaw_prior': torch.tensor(float(p['yaw_prior_rad']), dtype=torch.float32),
            'half_side_m': torch.tensor(half, dtype=torch.float32),
            'camera_latlon_deg': torch.from_numpy(np.asarray(p['camera_latlon_deg'],
                                                             np.float64)),
            'city_seed': torch.tensor(int(p['city_seed']), dtype=torch.int64),
        }


def collate(items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
