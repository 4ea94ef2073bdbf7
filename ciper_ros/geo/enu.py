"""WGS84 <-> local East-North-Up tangent plane at a datum (REP-103 / REP-105 map frame)."""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
import pymap3d

from ciper_ros.util.errors import UserError

ArrayLike = float | np.ndarray


def _check_latlon(lat_deg: ArrayLike, lon_deg: ArrayLike) -> None:
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
        raise UserError('latitude/longitude contain NaN or infinity')
    if np.any(np.abs(lat) > 90.0) or np.any(np.abs(lon) > 180.0):
        raise UserError(
            f'latitude must be within [-90, 90] and longitude within [-180, 180] degrees, got '
            f'lat in [{lat.min()}, {lat.max()}], lon in [{lon.min()}, {lon.max()}]')


def _scalar_or_array(x: np.ndarray) -> ArrayLike:
    return float(x) if np.ndim(x) == 0 else x


@dataclass(frozen=True)
class LocalTangentPlane:
    """The map frame: x east, y north, z up, tangent to the WGS84 ellipsoid at a datum.

    Exact (ellipsoidal, through ECEF) in both directions; vectorised over numpy arrays.
    """

    lat0_deg: float
    lon0_deg: float
    h0_m: float = 0.0

    def __post_init__(self) -> None:
        _check_latlon(self.lat0_deg, self.lon0_deg)
        if not math.isfinite(self.h0_m):
            raise UserError(f'datum height must be finite, got {self.h0_m}')

    def enu_from_geodetic(self, lat_deg: ArrayLike, lon_deg: ArrayLike,
                          h_m: ArrayLike = 0.0) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
        """(lat, lon, h) in degrees/metres -> (east, north, up) in metres."""
        _check_latlon(lat_deg, lon_deg)
        e, n, u = pymap3d.geodetic2enu(
            np.asarray(lat_deg, dtype=np.float64), np.asarray(lon_deg, dtype=np.float64),
            np.asarray(h_m, dtype=np.float64), self.lat0_deg, self.lon0_deg, self.h0_m)
        return _scalar_or_array(e), _scalar_or_array(n), _scalar_or_array(u)

    def geodetic_from_enu(self, east_m: ArrayLike, north_m: ArrayLike,
                          up_m: ArrayLike = 0.0) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
        """(east, north, up) in metres -> (lat, lon, h) in degrees/metres."""
        e = np.asarray(east_m, dtype=np.float64)
        n = np.asarray(north_m, dtype=np.float64)
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(n))):
            raise UserError('east/north contain NaN or infinity')
        lat, lon, h = pymap3d.enu2geodetic(
            e, n, np.asarray(up_m, dtype=np.float64), self.lat0_deg, self.lon0_deg, self.h0_m)
        return _scalar_or_array(lat), _scalar_or_array(lon), _scalar_or_array(h)

    def xy_m_from_latlon(self, latlon_deg: np.ndarray) -> np.ndarray:
        """(N, 2) lat/lon degrees -> (N, 2) east/north metres on the datum's surface (h=0)."""
        latlon = np.asarray(latlon_deg, dtype=np.float64).reshape(-1, 2)
        e, n, _ = self.enu_from_geodetic(latlon[:, 0], latlon[:, 1], self.h0_m)
        return np.stack([np.atleast_1d(e), np.atleast_1d(n)], axis=-1)

    def latlon_from_xy_m(self, xy_m: np.ndarray) -> np.ndarray:
        """(N, 2) east/north metres (up 0) -> (N, 2) lat/lon degrees."""
        xy = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        lat, lon, _ = self.geodetic_from_enu(xy[:, 0], xy[:, 1], 0.0)
        return np.stack([np.atleast_1d(lat), np.atleast_1d(lon)], axis=-1)

    def to_dict(self) -> dict:
        return {'lat0_deg': self.lat0_deg, 'lon0_deg': self.lon0_deg, 'h0_m': self.h0_m}

    @classmethod
    def from_dict(cls, d: dict) -> LocalTangentPlane:
        return cls(float(d['lat0_deg']), float(d['lon0_deg']), float(d.get('h0_m', 0.0)))
