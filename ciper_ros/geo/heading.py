"""Heading conventions.

``yaw_rad`` is REP-103 yaw: counter-clockwise from east, wrapped to (-pi, pi].
A compass *bearing* is clockwise from north (0 = north, 90 deg = east). Datasets that use
bearings convert at the loader, once, with these functions.
"""

from __future__ import annotations

import numpy as np

ArrayLike = float | np.ndarray


def wrap_angle_rad(angle_rad: ArrayLike) -> ArrayLike:
    """Wrap an angle (scalar or array) to (-pi, pi]."""
    wrapped = np.pi - np.mod(np.pi - np.asarray(angle_rad, dtype=np.float64), 2.0 * np.pi)
    # mod rounds to 2 pi itself for an angle a few ulp above pi: that gives -pi, not pi
    wrapped = np.where(wrapped <= -np.pi, wrapped + 2.0 * np.pi, wrapped)
    if np.ndim(wrapped) == 0:
        return float(wrapped)
    return wrapped


def yaw_rad_from_bearing_rad(bearing_rad: ArrayLike) -> ArrayLike:
    """Compass bearing (clockwise from north) -> REP-103 yaw (counter-clockwise from east)."""
    return wrap_angle_rad(np.pi / 2.0 - np.asarray(bearing_rad, dtype=np.float64))


def bearing_rad_from_yaw_rad(yaw_rad: ArrayLike) -> ArrayLike:
    """REP-103 yaw -> compass bearing in [0, 2 pi)."""
    bearing = np.mod(np.pi / 2.0 - np.asarray(yaw_rad, dtype=np.float64), 2.0 * np.pi)
    # mod of a tiny negative angle rounds to exactly 2 pi (yaw one ulp above pi / 2): 0
    bearing = np.where(bearing >= 2.0 * np.pi, bearing - 2.0 * np.pi, bearing)
    if np.ndim(bearing) == 0:
        return float(bearing)
    return bearing


def yaw_rad_from_bearing_deg(bearing_deg: ArrayLike) -> ArrayLike:
    """Compass bearing in degrees -> REP-103 yaw in radians."""
    return yaw_rad_from_bearing_rad(np.deg2rad(bearing_deg))


def bearing_deg_from_yaw_rad(yaw_rad: ArrayLike) -> ArrayLike:
    """REP-103 yaw in radians -> compass bearing in degrees, [0, 360)."""
    # below 360: the largest float below 2 pi becomes 359.99999999999994 (rounding is
    # monotonic), and the radians are below 2 pi (the guard above)
    bearing = np.rad2deg(bearing_rad_from_yaw_rad(yaw_rad))
    if np.ndim(bearing) == 0:
        return float(bearing)
    return bearing
