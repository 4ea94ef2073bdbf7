import math

import numpy as np
import pyproj
import pytest

from ciper_ros.geo import mercator

# Published VIGOR metres per pixel of the 640 px zoom-20 aerial images (Zhu et al.) and the
# latitude range of each city's VIGOR area; the published value must be the web-mercator
# resolution at a latitude inside that range.
VIGOR = {
    'NewYork': (0.113248, (40.50, 40.92)),
    'Seattle': (0.100817, (47.45, 47.75)),
    'SanFrancisco': (0.118141, (37.60, 37.85)),
    'Chicago': (0.111262, (41.64, 42.03)),
}


@pytest.mark.parametrize('city', sorted(VIGOR))
def test_vigor_published_resolution(city):
    m_per_px, (lat_lo, lat_hi) = VIGOR[city]
    lat = mercator.latitude_deg_for_resolution(m_per_px, 20)
    assert lat_lo <= lat <= lat_hi
    assert mercator.ground_resolution_m_per_px(lat, 20) == pytest.approx(m_per_px, rel=1e-9)
    # at the city's mid latitude the formula is within 0.6 % of the published value
    mid = mercator.ground_resolution_m_per_px((lat_lo + lat_hi) / 2.0, 20)
    assert mid == pytest.approx(m_per_px, rel=6e-3)


def test_kitti_resolution_zoom18_scale2():
    res = mercator.ground_resolution_m_per_px(49.015, 18, scale=2)
    assert res == pytest.approx(0.1958, abs=5e-5)


def test_resolution_constant_is_the_published_one():
    assert mercator.RESOLUTION_Z0_M_PER_PX == pytest.approx(156543.03392, abs=1e-5)
    assert mercator.ground_resolution_m_per_px(0.0, 0) == pytest.approx(156543.03392, abs=1e-5)


def test_resolution_matches_pyproj_east_west_scale():
    # one pixel east in EPSG:3857 is res / cos(lat) projected metres at the equator scale
    t = pyproj.Transformer.from_crs('EPSG:4326', 'EPSG:3857', always_xy=True)
    geod = pyproj.Geod(ellps='WGS84')
    for lat in (0.0, 30.0, 49.015, 60.0):
        x, y = t.transform(11.0, lat)
        lon2, lat2 = t.transform(x + mercator.EARTH_CIRCUMFERENCE_M / 2 ** 28, y,
                                 direction='INVERSE')
        _, _, dist = geod.inv(11.0, lat, lon2, lat2)
        res = mercator.ground_resolution_m_per_px(lat, 20)
        # spherical convention vs ellipsoidal distance: within the e^2 sin^2 term (< 0.35 %)
        assert dist == pytest.approx(res, rel=3.5e-3)


def test_global_px_matches_pyproj_epsg3857():
    t = pyproj.Transformer.from_crs('EPSG:4326', 'EPSG:3857', always_xy=True)
    rng = np.random.default_rng(0)
    lat = rng.uniform(-80, 80, 100)
    lon = rng.uniform(-179, 179, 100)
    x_m, y_m = t.transform(lon, lat)
    half = mercator.EARTH_CIRCUMFERENCE_M / 2.0
    for z in (0, 12, 20):
        world = 256 * 2 ** z
        gx, gy = mercator.global_px_from_latlon(lat, lon, z)
        assert np.allclose(gx, (x_m + half) / (2 * half) * world, atol=1e-6 * max(1, world / 1e6))
        assert np.allclose(gy, (half - y_m) / (2 * half) * world, atol=1e-6 * max(1, world / 1e6))


def test_global_px_round_trip():
    rng = np.random.default_rng(1)
    lat = rng.uniform(-85, 85, 1000)
    lon = rng.uniform(-180, 180, 1000)
    gx, gy = mercator.global_px_from_latlon(lat, lon, 20)
    lat2, lon2 = mercator.latlon_from_global_px(gx, gy, 20)
    assert np.max(np.abs(lat2 - lat)) < 1e-9 and np.max(np.abs(lon2 - lon)) < 1e-9


def test_tiles_and_tms():
    assert mercator.tile_xy_from_latlon(0.0, 0.0, 1) == (1, 1)
    assert mercator.tile_xy_from_latlon(85.0, -180.0, 3) == (0, 0)
    # a well-known tile: Munich centre at zoom 15
    assert mercator.tile_xy_from_latlon(48.137, 11.575, 15) == (17437, 11371)
    b = mercator.tile_bounds(17437, 11371, 15)
    assert b.contains(48.137, 11.575)
    assert mercator.tms_row_from_xyz_y(0, 3) == 7
    assert mercator.tms_row_from_xyz_y(7, 3) == 0
    assert mercator.xyz_y_from_tms_row(mercator.tms_row_from_xyz_y(5, 10), 10) == 5
    xs, ys = mercator.tiles_covering(b, 15)
    assert list(xs) == [17437] and list(ys) == [11371]


def test_tile_bounds_are_adjacent():
    a = mercator.tile_bounds(10, 20, 6)
    right = mercator.tile_bounds(11, 20, 6)
    below = mercator.tile_bounds(10, 21, 6)
    assert a.east_deg == pytest.approx(right.west_deg)
    assert a.south_deg == pytest.approx(below.north_deg)


def test_bad_zoom_and_latitude():
    with pytest.raises(ValueError, match='zoom'):
        mercator.ground_resolution_m_per_px(10.0, 31)
    with pytest.raises(ValueError, match='zoom'):
        mercator.global_px_from_latlon(10.0, 0.0, 1.5)
    with pytest.raises(ValueError, match='latitude'):
        mercator.global_px_from_latlon(89.0, 0.0, 3)
    with pytest.raises(ValueError):
        mercator.tile_bounds(8, 0, 3)
    assert mercator.MAX_LATITUDE_DEG == pytest.approx(85.0511287798, abs=1e-9)
    assert math.isfinite(mercator.latitude_deg_for_resolution(0.1, 20))
