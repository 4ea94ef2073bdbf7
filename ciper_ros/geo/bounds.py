"""Geographic bounding boxes in WGS84 degrees."""

from __future__ import annotations

from dataclasses import dataclass

from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class LatLonBounds:
    """An axis-aligned box in longitude/latitude degrees (MBTiles order: W, S, E, N)."""

    west_deg: float
    south_deg: float
    east_deg: float
    north_deg: float

    def __post_init__(self) -> None:
        for name in ('west_deg', 'south_deg', 'east_deg', 'north_deg'):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (-180.0 <= self.west_deg <= self.east_deg <= 180.0):
            raise UserError(
                f'bounds longitudes must satisfy -180 <= west <= east <= 180, got '
                f'west={self.west_deg} east={self.east_deg}')
        if not (-90.0 <= self.south_deg <= self.north_deg <= 90.0):
            raise UserError(
                f'bounds latitudes must satisfy -90 <= south <= north <= 90, got '
                f'south={self.south_deg} north={self.north_deg}')

    @classmethod
    def from_string(cls, text: str) -> LatLonBounds:
        """Parse the MBTiles metadata form 'west,south,east,north'."""
        parts = [p.strip() for p in text.split(',')]
        if len(parts) != 4:
            raise UserError(f"bounds must be 'west,south,east,north', got {text!r}")
        try:
            west, south, east, north = (float(p) for p in parts)
        except ValueError:
            raise UserError(
                f"bounds must be four numbers 'west,south,east,north', got {text!r}") from None
        return cls(west, south, east, north)

    @classmethod
    def around(cls, center_latlon_deg: tuple[float, float], side_m: float) -> LatLonBounds:
        """Return the box holding a square of ``side_m`` centred on a point, in its tangent plane.

        All four corners count: the square's edges are not parallels and meridians, so its
        south-west and north-east corners alone clip the others by millimetres.
        """
        import numpy as np

        from ciper_ros.geo.enu import LocalTangentPlane

        if not side_m > 0:
            raise UserError(f'the side of the square must be positive, got {side_m} m')
        h = side_m / 2.0
        latlon = LocalTangentPlane(*center_latlon_deg).latlon_from_xy_m(
            np.array([[-h, -h], [h, -h], [h, h], [-h, h]]))
        return cls(latlon[:, 1].min(), latlon[:, 0].min(), latlon[:, 1].max(),
                   latlon[:, 0].max())

    def to_string(self) -> str:
        return ','.join(repr(float(v)) for v in
                        (self.west_deg, self.south_deg, self.east_deg, self.north_deg))

    def contains(self, lat_deg: float, lon_deg: float) -> bool:
        return (self.south_deg <= lat_deg <= self.north_deg
                and self.west_deg <= lon_deg <= self.east_deg)

    def contains_bounds(self, other: LatLonBounds) -> bool:
        return (self.west_deg <= other.west_deg and other.east_deg <= self.east_deg
                and self.south_deg <= other.south_deg and other.north_deg <= self.north_deg)

    def union(self, other: LatLonBounds) -> LatLonBounds:
        return LatLonBounds(min(self.west_deg, other.west_deg),
                            min(self.south_deg, other.south_deg),
                            max(self.east_deg, other.east_deg),
                            max(self.north_deg, other.north_deg))

    @property
    def center_latlon_deg(self) -> tuple[float, float]:
        return ((self.south_deg + self.north_deg) / 2.0, (self.west_deg + self.east_deg) / 2.0)

    def __str__(self) -> str:
        return (f'[W {self.west_deg:.6f}, S {self.south_deg:.6f}, '
                f'E {self.east_deg:.6f}, N {self.north_deg:.6f}]')
