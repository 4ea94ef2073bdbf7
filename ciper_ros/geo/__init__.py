"""Geodesy and planar geometry: WGS84 <-> local ENU, web-mercator tiles, SE(2), headings."""

from ciper_ros.geo.bounds import LatLonBounds
from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.geo.heading import (
    bearing_deg_from_yaw_rad,
    bearing_rad_from_yaw_rad,
    wrap_angle_rad,
    yaw_rad_from_bearing_deg,
    yaw_rad_from_bearing_rad,
)
from ciper_ros.geo.se2 import SE2

__all__ = [
    'LatLonBounds',
    'LocalTangentPlane',
    'SE2',
    'bearing_deg_from_yaw_rad',
    'bearing_rad_from_yaw_rad',
    'wrap_angle_rad',
    'yaw_rad_from_bearing_deg',
    'yaw_rad_from_bearing_rad',
]
