"""Builders of small maps with known content, shared by the map tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ciper_ros.geo import LatLonBounds, LocalTangentPlane
from ciper_ros.maps import MBTilesWriter, write_pyramid, XYZWriter
from ciper_ros.maps.pattern import compose_samplers, grid_sampler, marker_sampler

# a datum away from the equator and prime meridian (both hemispheres of sign covered below)
DATUM = (37.7749, -122.4194)
MARKER_RGB = (0, 255, 255)
SIZE_M = 240.0


def marker_points(size_m: float = SIZE_M, spacing_m: float = 14.0, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    half = size_m / 2.0 - spacing_m
    ticks = np.arange(-half, half + 1e-9, spacing_m)
    xy = np.stack(np.meshgrid(ticks, ticks), axis=-1).reshape(-1, 2)
    return xy + rng.uniform(-spacing_m / 4, spacing_m / 4, xy.shape)


def area_bounds(plane: LocalTangentPlane, size_m: float) -> LatLonBounds:
    h = size_m / 2.0
    ll = plane.latlon_from_xy_m(np.array([[-h, -h], [h, h]]))
    return LatLonBounds(ll[0, 1], ll[0, 0], ll[1, 1], ll[1, 0])


def pattern_sampler(points: np.ndarray, radius_m: float = 1.2):
    return compose_samplers(grid_sampler(spacing_m=10.0, muted=True),
                            (marker_sampler(points, radius_m=radius_m, marker_rgb=MARKER_RGB),
                             MARKER_RGB))


def write_marker_map(path: Path, *, datum=DATUM, size_m: float = SIZE_M, zooms=(18, 19),
                     fmt: str = 'png', xyz: bool = False) -> tuple[LocalTangentPlane, np.ndarray]:
    plane = LocalTangentPlane(*datum)
    points = marker_points(size_m)
    bounds = area_bounds(plane, size_m)
    writer_cls = XYZWriter if xyz else MBTilesWriter
    with writer_cls(path, name='markers', fmt=fmt, bounds=bounds) as w:
        write_pyramid(w, plane=plane, sampler=pattern_sampler(points), bounds=bounds,
                      zooms=zooms, progress=False)
    return plane, points
