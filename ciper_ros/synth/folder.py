"""A city folder: the world (``city.npz``) and its aerial map (``aerial.mbtiles``)."""

from __future__ import annotations

import os
from pathlib import Path
import time

from ciper_ros.synth.aerial import write_aerial_map
from ciper_ros.synth.city import generate_city
from ciper_ros.synth.world import CityConfig, World

CITY_FILE = 'city.npz'
MAP_FILE = 'aerial.mbtiles'


def city_paths(folder: str | os.PathLike) -> tuple[Path, Path]:
    """(world file, aerial map) of a city folder; FileNotFoundError naming what is missing."""
    d = Path(folder)
    world, amap = d / CITY_FILE, d / MAP_FILE
    if not world.is_file() or not amap.is_file():
        raise FileNotFoundError(f'{d} is not a synthetic city folder (needs {CITY_FILE} and '
                                f'{MAP_FILE}; make one with `ciper synth city`)')
    return world, amap


def write_city_folder(folder: str | os.PathLike, config: CityConfig, *,
                      zooms: tuple[int, ...] = (19, 20),
                      progress: bool = True) -> tuple[World, dict]:
    """Generate a city and write its folder; returns the world and stage timings (s)."""
    d = Path(folder)
    t0 = time.perf_counter()
    world = generate_city(config)
    t_gen = time.perf_counter() - t0
    world.save(d / CITY_FILE)
    t0 = time.perf_counter()
    write_aerial_map(world, d / MAP_FILE, zooms=zooms, overwrite=True, progress=progress)
    return world, {'generate_s': t_gen, 'aerial_s': time.perf_counter() - t0}
