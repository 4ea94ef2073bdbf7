"""The map imagery store API: tiles in, north-up metric crops out.

A store holds a web-mercator pyramid of RGB raster tiles. ``crop`` samples a square,
north-up image centred at a lat/lon, defined in the local ENU tangent plane at that centre:
pixel (u, v) in continuous coordinates has u right = east, v down = south, the crop centre
at (side_px / 2, side_px / 2), and the centre of pixel (col, row) at (col + 0.5, row + 0.5).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
import math

import cv2
import numpy as np

from ciper_ros.geo import mercator
from ciper_ros.geo.bounds import LatLonBounds
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.maps.cache import LRUTileCache
from ciper_ros.maps.codec import decode_rgb
from ciper_ros.maps.errors import (
    MapStoreError,
    OutOfBoundsError,
    TileNotFoundError,
    ZoomNotAvailableError,
)
from ciper_ros.maps.warp import knots, upsample_grid
from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class MapMetadata:
    """What a store knows about itself."""

    name: str
    format: str
    bounds: LatLonBounds
    zooms: tuple[int, ...]
    tile_px: int
    extra: dict = field(default_factory=dict)

    @property
    def minzoom(self) -> int:
        return self.zooms[0]

    @property
    def maxzoom(self) -> int:
        return self.zooms[-1]


@dataclass(frozen=True)
class MapCrop:
    """A north-up metric crop. ``image_rgb`` is (side_px, side_px, 3) uint8."""

    image_rgb: np.ndarray
    center_latlon_deg: tuple[float, float]
    side_m: float
    side_px: int
    zoom: int

    @property
    def m_per_px(self) -> float:
        return self.side_m / self.side_px

    @property
    def plane(self) -> LocalTangentPlane:
        """The crop's own ENU frame (tangent at its centre)."""
        return LocalTangentPlane(*self.center_latlon_deg)

    def uv_px_from_xy_m(self, xy_m: np.ndarray) -> np.ndarray:
        """(..., 2) east/north metres from the crop centre -> (..., 2) continuous (u, v) px."""
        xy = np.asarray(xy_m, dtype=np.float64)
        half = self.side_px / 2.0
        return np.stack([half + xy[..., 0] / self.m_per_px,
                         half - xy[..., 1] / self.m_per_px], axis=-1)

    def xy_m_from_uv_px(self, uv_px: np.ndarray) -> np.ndarray:
        """(..., 2) continuous (u, v) px -> (..., 2) east/north metres from the crop centre."""
        uv = np.asarray(uv_px, dtype=np.float64)
        half = self.side_px / 2.0
        return np.stack([(uv[..., 0] - half) * self.m_per_px,
                         (half - uv[..., 1]) * self.m_per_px], axis=-1)

    def uv_px_from_latlon(self, latlon_deg: np.ndarray) -> np.ndarray:
        """(N, 2) lat/lon degrees -> (N, 2) continuous (u, v) px."""
        return self.uv_px_from_xy_m(self.plane.xy_m_from_latlon(latlon_deg))


class TileStore(ABC):
    """Base of the MBTiles and XYZ-folder stores: tile access, LRU cache, metric crops.

    Subclasses implement ``_read_tile_bytes`` and ``_load_metadata``. Reads are safe from
    several threads at once; the decoded-tile cache is shared between them.
    """

    def __init__(self, *, cache_mb: float = 64.0) -> None:
        self.cache = LRUTileCache(capacity_mb=cache_mb)
        self._metadata: MapMetadata | None = None

    # ----------------------------------------------------------------- backend interface
    @abstractmethod
    def _read_tile_bytes(self, zoom: int, x: int, y: int) -> bytes | None:
        """Return the encoded tile (XYZ addressing), or None when absent."""

    @abstractmethod
    def _load_metadata(self) -> MapMetadata:
        """Read the store's metadata (called once, lazily)."""

    @abstractmethod
    def tile_count(self, zoom: int | None = None) -> int:
        """Count the tiles, at one zoom or in all."""

    @property
    @abstractmethod
    def source(self) -> str:
        """The path the store reads, for messages."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources."""

    def __enter__(self) -> TileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- tiles
    @property
    def metadata(self) -> MapMetadata:
        if self._metadata is None:
            self._metadata = self._load_metadata()
        return self._metadata

    def _check_zoom(self, zoom: int) -> None:
        if zoom not in self.metadata.zooms:
            raise ZoomNotAvailableError(
                f'zoom {zoom} is not in {self.source}; available zooms: '
                f'{list(self.metadata.zooms)}')

    def has_tile(self, zoom: int, x: int, y: int) -> bool:
        return self._read_tile_bytes(zoom, x, y) is not None

    def tile_bytes(self, zoom: int, x: int, y: int) -> bytes:
        """Return the encoded bytes of XYZ tile (x, y) at ``zoom``."""
        self._check_zoom(zoom)
        data = self._read_tile_bytes(zoom, x, y)
        if data is None:
            raise TileNotFoundError(f'tile z={zoom} x={x} y={y} is missing from {self.source}')
        return data

    def tile(self, zoom: int, x: int, y: int) -> np.ndarray:
        """Return XYZ tile (x, y) decoded: (tile_px, tile_px, 3) uint8 RGB, read-only (cached)."""
        def load() -> np.ndarray:
            rgb = decode_rgb(self.tile_bytes(zoom, x, y),
                             what=f'tile z={zoom} x={x} y={y} of {self.source}')
            px = self.metadata.tile_px
            if rgb.shape[:2] != (px, px):
                raise MapStoreError(f'tile z={zoom} x={x} y={y} of {self.source} is '
                                    f'{rgb.shape[1]}x{rgb.shape[0]} px; the store uses {px} px')
            return rgb
        return self.cache.get_or_load((zoom, x, y), load)

    # ----------------------------------------------------------------- crops
    def choose_zoom(self, lat_deg: float, m_per_px: float) -> int:
        """Coarsest available zoom at least as fine as ``m_per_px`` (else the finest)."""
        for z in self.metadata.zooms:
            res = mercator.ground_resolution_m_per_px(lat_deg, z, tile_px=self.metadata.tile_px)
            if res <= m_per_px * 1.0001:
                return z
        return self.metadata.zooms[-1]

    def crop_bounds(self, center_latlon_deg: tuple[float, float], side_m: float) -> LatLonBounds:
        """Geographic box of a crop (its four corners in the crop's tangent plane)."""
        plane = LocalTangentPlane(*center_latlon_deg)
        h = side_m / 2.0
        latlon = plane.latlon_from_xy_m(np.array([[-h, -h], [h, -h], [h, h], [-h, h]]))
        return LatLonBounds(latlon[:, 1].min(), latlon[:, 0].min(),
                            latlon[:, 1].max(), latlon[:, 0].max())

    def crop(self, center_latlon_deg: tuple[float, float], side_m: float, side_px: int, *,
             zoom: int | None = None, missing: str = 'error',
             fill_rgb: tuple[int, int, int] = (0, 0, 0)) -> MapCrop:
        """North-up metric crop centred at a lat/lon.

        :param center_latlon_deg: crop centre (lat, lon) in degrees
        :param side_m: side of the square crop in metres
        :param side_px: side of the output image in pixels (m/px = side_m / side_px)
        :param zoom: source zoom; default: coarsest zoom at least as fine as the output
        :param missing: 'error' raises TileNotFoundError on a missing tile; 'fill' paints it
        :returns: MapCrop with a (side_px, side_px, 3) uint8 RGB image
        """
        lat0, lon0 = (float(c) for c in center_latlon_deg)
        if not (math.isfinite(lat0) and math.isfinite(lon0)):
            raise UserError(f'crop centre must be finite, got {center_latlon_deg}')
        if not (math.isfinite(side_m) and side_m > 0.0):
            raise UserError(f'crop side_m must be a positive number, got {side_m}')
        if int(side_px) != side_px or side_px < 2:
            raise UserError(f'crop side_px must be an integer >= 2, got {side_px}')
        if missing not in ('error', 'fill'):
            raise UserError(f"missing must be 'error' or 'fill', got {missing!r}")
        side_px = int(side_px)
        meta = self.metadata
        box = self.crop_bounds((lat0, lon0), side_m)
        if not meta.bounds.contains_bounds(box):
            raise OutOfBoundsError(
                f'crop of {side_m:g} m centred at ({lat0:.7f}, {lon0:.7f}) spans {box}, '
                f'which leaves the map bounds {meta.bounds} of {self.source}')
        m_per_px = side_m / side_px
        if zoom is None:
            zoom = self.choose_zoom(lat0, m_per_px)
        self._check_zoom(zoom)
        tile_px = meta.tile_px

        # global mercator pixel of every output pixel centre: exact on knots, bilinear between
        kn = knots(side_px)
        half = side_px / 2.0
        east = (kn[None, :] + 0.5 - half) * m_per_px
        north = (half - kn[:, None] - 0.5) * m_per_px
        east, north = np.broadcast_arrays(east, north)
        lat, lon, _ = LocalTangentPlane(lat0, lon0).geodetic_from_enu(east, north, 0.0)
        gx_k, gy_k = mercator.global_px_from_latlon(lat, lon, zoom, tile_px=tile_px)

        # source mosaic: all tiles under the crop plus a one-pixel margin for interpolation
        x0 = int(math.floor((gx_k.min() - 1.0) / tile_px))
        x1 = int(math.floor((gx_k.max() + 1.0) / tile_px))
        y0 = int(math.floor((gy_k.min() - 1.0) / tile_px))
        y1 = int(math.floor((gy_k.max() + 1.0) / tile_px))
        mosaic = self._mosaic(zoom, range(x0, x1 + 1), range(y0, y1 + 1), missing, fill_rgb)

        # downsampling by >= 2x: pre-shrink with area averaging so remap does not alias
        res = mercator.ground_resolution_m_per_px(lat0, zoom, tile_px=tile_px)
        k = max(1, int(m_per_px / res + 1e-6))
        if k >= 2:
            h, w = mosaic.shape[:2]
            mosaic = np.pad(mosaic, ((0, (-h) % k), (0, (-w) % k), (0, 0)), mode='edge')
            mosaic = cv2.resize(mosaic, (mosaic.shape[1] // k, mosaic.shape[0] // k),
                                interpolation=cv2.INTER_AREA)
        # continuous global px -> index space of the (shrunk) mosaic; pixel i centre = i
        map_x = (gx_k - x0 * tile_px) / k - 0.5
        map_y = (gy_k - y0 * tile_px) / k - 0.5
        map_x = upsample_grid(map_x, kn, kn, (side_px, side_px)).astype(np.float32)
        map_y = upsample_grid(map_y, kn, kn, (side_px, side_px)).astype(np.float32)
        image = cv2.remap(mosaic, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        return MapCrop(image_rgb=image, center_latlon_deg=(lat0, lon0), side_m=float(side_m),
                       side_px=side_px, zoom=zoom)

    def _mosaic(self, zoom: int, xs: range, ys: range, missing: str,
                fill_rgb: tuple[int, int, int]) -> np.ndarray:
        tile_px = self.metadata.tile_px
        mosaic = np.empty((len(ys) * tile_px, len(xs) * tile_px, 3), dtype=np.uint8)
        n = 1 << zoom
        for j, y in enumerate(ys):
            for i, x in enumerate(xs):
                block = mosaic[j * tile_px:(j + 1) * tile_px, i * tile_px:(i + 1) * tile_px]
                try:
                    if not (0 <= x < n and 0 <= y < n):
                        raise TileNotFoundError(
                            f'tile z={zoom} x={x} y={y} is outside the world at zoom {zoom}')
                    block[...] = self.tile(zoom, x, y)
                except TileNotFoundError:
                    if missing == 'error':
                        raise
                    block[...] = fill_rgb
        return mosaic
