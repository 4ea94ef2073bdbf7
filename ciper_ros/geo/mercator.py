"""Web-mercator (EPSG:3857, the XYZ / slippy-map tiling) math.

Global pixel coordinates at zoom ``z`` are continuous: the map is ``tile_px * 2**z`` pixels
wide, (0, 0) is the north-west corner of the world and the centre of pixel (col, row) is at
(col + 0.5, row + 0.5). Tile (x, y) covers global pixels [x * tile_px, (x + 1) * tile_px).
MBTiles stores rows in TMS order: ``tile_row = 2**z - 1 - y``.
"""

from __future__ import annotations

import math

import numpy as np

from ciper_ros.geo.bounds import LatLonBounds
from ciper_ros.util.errors import UserError

# WGS84 semi-major axis: web-mercator projects on a sphere of this radius.
EARTH_RADIUS_M = 6378137.0
EARTH_CIRCUMFERENCE_M = 2.0 * math.pi * EARTH_RADIUS_M
# m/px at zoom 0 on the equator for 256 px tiles (the published 156543.03392...)
RESOLUTION_Z0_M_PER_PX = EARTH_CIRCUMFERENCE_M / 256.0
MAX_LATITUDE_DEG = math.degrees(math.atan(math.sinh(math.pi)))  # 85.0511287798...
DEFAULT_TILE_PX = 256

ArrayLike = float | np.ndarray


def _check_zoom(zoom: int) -> None:
    if int(zoom) != zoom or not (0 <= zoom <= 30):
        raise UserError(f'zoom must be an integer in [0, 30], got {zoom}')


def ground_resolution_m_per_px(lat_deg: ArrayLike, zoom: int, *, tile_px: int = DEFAULT_TILE_PX,
                               scale: int = 1) -> ArrayLike:
    """East-west ground distance of one pixel at a latitude (the published convention).

    ``scale`` is the imagery scale factor (2 for 'retina' 512 px requests of a 256 px
    pyramid, as in KITTI cross-view satellite maps).
    """
    _check_zoom(zoom)
    res = (EARTH_CIRCUMFERENCE_M / (tile_px * 2.0 ** zoom * scale)
           * np.cos(np.deg2rad(np.asarray(lat_deg, dtype=np.float64))))
    return float(res) if np.ndim(res) == 0 else res


def latitude_deg_for_resolution(m_per_px: float, zoom: int, *, tile_px: int = DEFAULT_TILE_PX,
                                scale: int = 1) -> float:
    """Inverse of :func:`ground_resolution_m_per_px` (northern hemisphere)."""
    equator = ground_resolution_m_per_px(0.0, zoom, tile_px=tile_px, scale=scale)
    if not (0.0 < m_per_px <= equator):
        raise UserError(f'{m_per_px} m/px is not reachable at zoom {zoom} '
                         f'(equator: {equator} m/px)')
    return math.degrees(math.acos(m_per_px / equator))


def global_px_from_latlon(lat_deg: ArrayLike, lon_deg: ArrayLike, zoom: int, *,
                          tile_px: int = DEFAULT_TILE_PX) -> tuple[ArrayLike, ArrayLike]:
    """Lat/lon degrees -> continuous global pixel (x right/east, y down/south) at a zoom."""
    _check_zoom(zoom)
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    if np.any(np.abs(lat) > MAX_LATITUDE_DEG) or np.any(np.abs(lon) > 180.0):
        raise UserError(f'latitude must be within +-{MAX_LATITUDE_DEG:.6f} and longitude within '
                         f'+-180 degrees for web-mercator')
    world_px = tile_px * 2.0 ** zoom
    x = (lon + 180.0) / 360.0 * world_px
    y = (0.5 - np.log(np.tan(np.pi / 4.0 + np.deg2rad(lat) / 2.0)) / (2.0 * np.pi)) * world_px
    if np.ndim(x) == 0:
        return float(x), float(y)
    return x, y


def latlon_from_global_px(x_px: ArrayLike, y_px: ArrayLike, zoom: int, *,
                          tile_px: int = DEFAULT_TILE_PX) -> tuple[ArrayLike, ArrayLike]:
    """Continuous global pixel at a zoom -> lat/lon degrees."""
    _check_zoom(zoom)
    world_px = tile_px * 2.0 ** zoom
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    lon = x / world_px * 360.0 - 180.0
    lat = np.rad2deg(np.arctan(np.sinh(np.pi * (1.0 - 2.0 * y / world_px))))
    if np.ndim(lon) == 0:
        return float(lat), float(lon)
    return lat, lon


def tile_xy_from_latlon(lat_deg: float, lon_deg: float, zoom: int) -> tuple[int, int]:
    """Return the XYZ tile (x, y) that contains a point (clamped to the world at its edges)."""
    x, y = global_px_from_latlon(lat_deg, lon_deg, zoom, tile_px=1)
    n = 2 ** zoom
    return min(max(int(math.floor(x)), 0), n - 1), min(max(int(math.floor(y)), 0), n - 1)


def tile_bounds(x: int, y: int, zoom: int) -> LatLonBounds:
    """Geographic bounds of XYZ tile (x, y, zoom)."""
    n = 2 ** zoom
    if not (0 <= x < n and 0 <= y < n):
        raise UserError(f'tile ({x}, {y}) does not exist at zoom {zoom} (0 <= x, y < {n})')
    north, west = latlon_from_global_px(x, y, zoom, tile_px=1)
    south, east = latlon_from_global_px(x + 1, y + 1, zoom, tile_px=1)
    return LatLonBounds(west, south, east, north)


def tile_range_bounds(zoom: int, xs: tuple[int, int], ys: tuple[int, int]) -> LatLonBounds:
    """Geographic bounds of the XYZ tiles x in [xs[0], xs[1]], y in [ys[0], ys[1]] at a zoom."""
    nw = tile_bounds(xs[0], ys[0], zoom)
    se = tile_bounds(xs[1], ys[1], zoom)
    return LatLonBounds(nw.west_deg, se.south_deg, se.east_deg, nw.north_deg)


def tiles_covering(bounds: LatLonBounds, zoom: int) -> tuple[range, range]:
    """XYZ tile column and row ranges whose tiles intersect a bounding box (edges exclusive)."""
    n = 2 ** zoom
    north = min(bounds.north_deg, MAX_LATITUDE_DEG)
    south = max(bounds.south_deg, -MAX_LATITUDE_DEG)
    x_w, y_n = global_px_from_latlon(north, bounds.west_deg, zoom, tile_px=1)
    x_e, y_s = global_px_from_latlon(south, bounds.east_deg, zoom, tile_px=1)
    eps = 1e-7  # tile units (~0.03 px): bounds computed from tile edges round both ways
    x0 = min(max(int(math.floor(x_w + eps)), 0), n - 1)
    y0 = min(max(int(math.floor(y_n + eps)), 0), n - 1)
    x1 = min(max(int(math.ceil(x_e - eps)) - 1, x0), n - 1)
    y1 = min(max(int(math.ceil(y_s - eps)) - 1, y0), n - 1)
    return range(x0, x1 + 1), range(y0, y1 + 1)


def tms_row_from_xyz_y(y: int, zoom: int) -> int:
    """XYZ row (0 = north) <-> TMS row (0 = south); the map is its own inverse."""
    return (1 << zoom) - 1 - y


xyz_y_from_tms_row = tms_row_from_xyz_y
