"""Write web-mercator tile pyramids from imagery defined in a local ENU frame.

The synthetic city renders its orthophoto in the map's ENU frame; this module resamples it
into web-mercator tiles (exact geodesy per tile, see ``warp``) so the city is stored and read
exactly like a real map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import cv2
import numpy as np
from tqdm import tqdm

from ciper_ros.geo import mercator
from ciper_ros.geo.bounds import LatLonBounds
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.maps.warp import knots, upsample_grid
from ciper_ros.util.errors import UserError

# (H, W) east_m, (H, W) north_m, m_per_px of the target -> (H, W, 3) uint8 RGB
EnuSampler = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


class TileWriter(Protocol):
    def has_tile(self, zoom: int, x: int, y: int) -> bool: ...

    def put_tile(self, zoom: int, x: int, y: int, tile: np.ndarray | bytes) -> None: ...


def tile_enu_m(plane: LocalTangentPlane, zoom: int, x: int, y: int,
               tile_px: int) -> tuple[np.ndarray, np.ndarray]:
    """East/north metres in ``plane`` of every pixel centre of XYZ tile (x, y): two (H, W)."""
    kn = knots(tile_px)
    gx = x * tile_px + kn[None, :] + 0.5
    gy = y * tile_px + kn[:, None] + 0.5
    gx, gy = np.broadcast_arrays(gx, gy)
    lat, lon = mercator.latlon_from_global_px(gx, gy, zoom, tile_px=tile_px)
    east, north, _ = plane.enu_from_geodetic(lat, lon, plane.h0_m)
    return (upsample_grid(east, kn, kn, (tile_px, tile_px)),
            upsample_grid(north, kn, kn, (tile_px, tile_px)))


def write_pyramid(writer: TileWriter, *, plane: LocalTangentPlane, sampler: EnuSampler,
                  bounds: LatLonBounds, zooms: Iterable[int], tile_px: int = 256,
                  progress: bool = True, desc: str = 'tiles') -> int:
    """Render every tile of ``zooms`` that intersects ``bounds``; skip tiles already written.

    Resumable: a rerun after a kill only renders the missing tiles. Returns tiles written.
    """
    jobs = []
    for z in sorted(set(zooms)):
        xs, ys = mercator.tiles_covering(bounds, z)
        jobs.extend((z, x, y) for y in ys for x in xs)
    written = 0
    for z, x, y in tqdm(jobs, desc=desc, unit='tile', disable=None if progress else True,
                        leave=False):
        if writer.has_tile(z, x, y):
            continue
        east, north = tile_enu_m(plane, z, x, y, tile_px)
        res = mercator.ground_resolution_m_per_px(
            plane.lat0_deg, z, tile_px=tile_px)
        rgb = sampler(east, north, res)
        if rgb.shape != (tile_px, tile_px, 3) or rgb.dtype != np.uint8:
            raise UserError(f'sampler returned {rgb.dtype} {rgb.shape}; expected uint8 '
                             f'({tile_px}, {tile_px}, 3)')
        writer.put_tile(z, x, y, rgb)
        written += 1
    return written


class RasterSampler:
    """Samples a north-up RGB raster georeferenced in ENU metres (bilinear, area pre-filter).

    ``origin_xy_m`` is the (east, north) of the raster's top-left corner; pixel (col, row)
    covers east [e0 + col * m, e0 + (col + 1) * m) and north (n0 - (row + 1) * m, n0 - row * m].
    """

    def __init__(self, image_rgb: np.ndarray, *, origin_xy_m: tuple[float, float],
                 m_per_px: float, fill_rgb: tuple[int, int, int] = (0, 0, 0)) -> None:
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise UserError(f'expected an (H, W, 3) uint8 raster, got {img.dtype} {img.shape}')
        if not m_per_px > 0:
            raise UserError(f'm_per_px must be positive, got {m_per_px}')
        self.image_rgb = img
        self.origin_xy_m = (float(origin_xy_m[0]), float(origin_xy_m[1]))
        self.m_per_px = float(m_per_px)
        self.fill_rgb = tuple(int(c) for c in fill_rgb)
        self._pyramid: dict[int, np.ndarray] = {1: img}

    def _level(self, k: int) -> np.ndarray:
        if k not in self._pyramid:
            h, w = self.image_rgb.shape[:2]
            self._pyramid[k] = cv2.resize(self.image_rgb, (max(1, w // k), max(1, h // k)),
                                          interpolation=cv2.INTER_AREA)
        return self._pyramid[k]

    def __call__(self, east_m: np.ndarray, north_m: np.ndarray,
                 target_m_per_px: float) -> np.ndarray:
        k = max(1, int(target_m_per_px / self.m_per_px + 1e-6))
        src = self._level(k)
        # the k-level's pixel i covers source pixels [k i, k i + k): centre at k i + k / 2
        u = (east_m - self.origin_xy_m[0]) / (self.m_per_px * k) - 0.5
        v = (self.origin_xy_m[1] - north_m) / (self.m_per_px * k) - 0.5
        return cv2.remap(src, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=self.fill_rgb)
