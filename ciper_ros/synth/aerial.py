"""The synthetic city's aerial orthophoto as a web-mercator MBTiles map."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ciper_ros.geo.bounds import LatLonBounds
from ciper_ros.maps import MBTilesWriter, write_pyramid
from ciper_ros.synth.appearance import aerial_capture, AerialSampler, Capture
from ciper_ros.synth.world import World


def world_bounds(world: World) -> LatLonBounds:
    h = world.size_px * world.res_m / 2.0
    ll = world.plane.latlon_from_xy_m(np.array([[-h, -h], [h, h]]))
    return LatLonBounds(ll[0, 1], ll[0, 0], ll[1, 1], ll[1, 0])


def write_aerial_map(world: World, path: str | os.PathLike, *, zooms=(19, 20),
                     fmt: str = 'jpg', quality: int = 80, capture: Capture | None = None,
                     overwrite: bool = False, progress: bool = True) -> Path:
    """Render the aerial capture (epoch 0) into an MBTiles file (atomic, resumable).

    The capture (sun, colour response, shadows), blur and resolution follow the city's
    appearance preset; ``capture`` overrides the drawn conditions.
    """
    if capture is None:
        capture = aerial_capture(world)
    sampler = AerialSampler(world, capture, epoch=0)
    bounds = world_bounds(world)
    meta = {'ciper_city_seed': str(world.config.seed),
            'ciper_city_size_m': str(world.config.size_m),
            'ciper_datum': f'{world.config.lat0_deg},{world.config.lon0_deg}',
            'attribution': 'ciper_ros synthetic city'}
    if world.config.appearance != 'default':   # default maps stay byte-identical to before
        meta['ciper_city_appearance'] = world.config.appearance
    with MBTilesWriter(path, name=f'ciper synthetic city {world.config.seed}', fmt=fmt,
                       bounds=bounds, jpeg_quality=quality, resume=True, overwrite=overwrite,
                       metadata=meta) as writer:
        write_pyramid(writer, plane=world.plane, sampler=sampler, bounds=bounds, zooms=zooms,
                      progress=progress, desc='aerial tiles')
    return Path(path)
