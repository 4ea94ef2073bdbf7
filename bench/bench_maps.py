"""Map store benchmark: crop latency cold vs cached, and knot-interpolated vs exact geodesy.

Baselines are measured in the same run: (a) the same crops with the tile cache disabled,
(b) per-pixel exact geodesy instead of exact-on-knots + bilinear (also reports the largest
coordinate difference between the two, in source pixels).
"""

from __future__ import annotations

from pathlib import Path
import tempfile
import time

import numpy as np

from ciper_ros.geo import LatLonBounds, LocalTangentPlane, mercator
from ciper_ros.maps import MBTilesStore, MBTilesWriter, write_pyramid
from ciper_ros.maps.pattern import grid_sampler
from ciper_ros.maps.warp import knots, upsample_grid

DATUM = (48.137, 11.575)
SIZE_M = 400.0
CROP_M, CROP_PX = 64.0, 256   # a typical aerial crop of the pose head
N_CROPS = 60


def _percentiles_ms(times_s: list[float]) -> dict:
    t = np.array(times_s) * 1000.0
    return {'mean_ms': round(float(t.mean()), 3), 'p50_ms': round(float(np.median(t)), 3),
            'p95_ms': round(float(np.percentile(t, 95)), 3)}


def _crop_times(store: MBTilesStore, centers) -> list[float]:
    times = []
    for c in centers:
        t0 = time.perf_counter()
        store.crop(c, CROP_M, CROP_PX)
        times.append(time.perf_counter() - t0)
    return times


def _coords_exact_vs_knots(plane: LocalTangentPlane, zoom: int) -> dict:
    """Time and compare the two ways of computing crop sampling coordinates."""
    m = CROP_M / CROP_PX
    half = CROP_PX / 2.0
    idx = np.arange(CROP_PX, dtype=np.float64)
    t0 = time.perf_counter()
    east, north = np.meshgrid((idx + 0.5 - half) * m, (half - idx - 0.5) * m)
    lat, lon, _ = plane.geodetic_from_enu(east, north, 0.0)
    gx_exact, gy_exact = mercator.global_px_from_latlon(lat, lon, zoom)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    kn = knots(CROP_PX)
    east, north = np.meshgrid((kn + 0.5 - half) * m, (half - kn - 0.5) * m)
    lat, lon, _ = plane.geodetic_from_enu(east, north, 0.0)
    gx_k, gy_k = mercator.global_px_from_latlon(lat, lon, zoom)
    x0, y0 = gx_k.min(), gy_k.min()
    gx = upsample_grid(gx_k - x0, kn, kn, (CROP_PX, CROP_PX)) + x0
    gy = upsample_grid(gy_k - y0, kn, kn, (CROP_PX, CROP_PX)) + y0
    t_knots = time.perf_counter() - t0
    diff = float(max(np.abs(gx - gx_exact).max(), np.abs(gy - gy_exact).max()))
    return {'exact_per_pixel_ms': round(t_exact * 1000, 3),
            'knots_bilinear_ms': round(t_knots * 1000, 3),
            'speedup_knots_vs_exact': round(t_exact / t_knots, 1),
            'max_coordinate_difference_px': diff}


def run() -> dict:
    plane = LocalTangentPlane(*DATUM)
    h = SIZE_M / 2.0
    ll = plane.latlon_from_xy_m(np.array([[-h, -h], [h, h]]))
    bounds = LatLonBounds(ll[0, 1], ll[0, 0], ll[1, 1], ll[1, 0])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'bench.mbtiles'
        t0 = time.perf_counter()
        with MBTilesWriter(path, name='bench', bounds=bounds) as w:
            n_tiles = write_pyramid(w, plane=plane, sampler=grid_sampler(), bounds=bounds,
                                    zooms=(18, 19, 20), progress=False)
        t_write = time.perf_counter() - t0

        # a vehicle's consecutive crops stay within ~30 m of each other
        rng = np.random.default_rng(0)
        centers = [tuple(c) for c in plane.latlon_from_xy_m(rng.uniform(-30, 30, (N_CROPS, 2)))]
        with MBTilesStore(path, cache_mb=0) as cold_store:
            cold = _crop_times(cold_store, centers)
        with MBTilesStore(path, cache_mb=64) as warm_store:
            _crop_times(warm_store, centers[:5])  # fill the cache
            warm = _crop_times(warm_store, centers)
            hit_rate = warm_store.cache.hits / max(1, warm_store.cache.hits
                                                   + warm_store.cache.misses)
            zoom = warm_store.choose_zoom(DATUM[0], CROP_M / CROP_PX)
    cold_s, warm_s = _percentiles_ms(cold), _percentiles_ms(warm)
    return {
        'setup': {'crop_side_m': CROP_M, 'crop_side_px': CROP_PX, 'crops': N_CROPS,
                  'source_zoom': zoom, 'map_side_m': SIZE_M},
        'pyramid_write': {'tiles': n_tiles, 'seconds': round(t_write, 3),
                          'tiles_per_s': round(n_tiles / t_write, 1)},
        'crop_no_cache': cold_s,
        'crop_lru_cache': {**warm_s, 'cache_hit_rate': round(hit_rate, 3)},
        'speedup_cache_vs_no_cache': round(cold_s['mean_ms'] / warm_s['mean_ms'], 2),
        'crop_coordinates': _coords_exact_vs_knots(plane, zoom),
    }
