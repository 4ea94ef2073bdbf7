import numpy as np
import pymap3d
import pyproj
import pytest

from ciper_ros.geo import LocalTangentPlane

DATUMS = [(48.137, 11.575, 520.0), (-33.8688, 151.2093, 10.0), (40.66154, -73.9, 0.0),
          (0.0, 0.0, 0.0), (64.1466, -21.9426, 30.0)]


def pyproj_enu(lat, lon, h, datum):
    """Independent reference: PROJ's cart + topocentric conversion."""
    lat0, lon0, h0 = datum
    t = pyproj.Transformer.from_pipeline(
        '+proj=pipeline +step +proj=axisswap +order=2,1 '
        '+step +proj=unitconvert +xy_in=deg +xy_out=rad +step +proj=cart +ellps=WGS84 '
        f'+step +proj=topocentric +ellps=WGS84 +lat_0={lat0} +lon_0={lon0} +h_0={h0}')
    return np.array(t.transform(lat, lon, h))


@pytest.mark.parametrize('datum', DATUMS)
def test_enu_matches_pyproj_topocentric(datum):
    rng = np.random.default_rng(0)
    plane = LocalTangentPlane(*datum)
    lat = datum[0] + rng.uniform(-0.05, 0.05, 200)
    lon = datum[1] + rng.uniform(-0.05, 0.05, 200)
    h = datum[2] + rng.uniform(-50, 50, 200)
    ours = np.array(plane.enu_from_geodetic(lat, lon, h))
    ref = pyproj_enu(lat, lon, h, datum)
    assert np.max(np.abs(ours - ref)) < 1e-6  # metres
    ref2 = np.array(pymap3d.geodetic2enu(lat, lon, h, *datum))
    assert np.max(np.abs(ref2 - ref)) < 1e-6  # the two libraries agree too


@pytest.mark.parametrize('datum', DATUMS)
def test_enu_round_trip_below_1mm(datum):
    rng = np.random.default_rng(1)
    plane = LocalTangentPlane(*datum)
    e, n, u = rng.uniform(-10_000, 10_000, (3, 500))
    u = u / 100.0
    lat, lon, h = plane.geodetic_from_enu(e, n, u)
    e2, n2, u2 = plane.enu_from_geodetic(lat, lon, h)
    err = np.sqrt((e - e2) ** 2 + (n - n2) ** 2 + (u - u2) ** 2)
    assert err.max() < 1e-3


def test_enu_axes_point_east_and_north():
    plane = LocalTangentPlane(48.0, 11.0)
    e, n, _ = plane.enu_from_geodetic(48.001, 11.0)
    assert abs(e) < 1e-6 and 110.0 < n < 112.0  # 0.001 deg of latitude ~ 111 m
    e, n, _ = plane.enu_from_geodetic(48.0, 11.001)
    assert 74.0 < e < 75.0 and abs(n) < 0.01   # ~ 111 m * cos(48 deg)


def test_xy_helpers_round_trip():
    plane = LocalTangentPlane(37.0, -122.0)
    xy = np.array([[0.0, 0.0], [100.0, -50.0], [-3.5, 2000.0]])
    assert np.allclose(plane.xy_m_from_latlon(plane.latlon_from_xy_m(xy)), xy, atol=1e-6)
    assert LocalTangentPlane.from_dict(plane.to_dict()) == plane


@pytest.mark.parametrize('bad', [(float('nan'), 0.0), (91.0, 0.0), (0.0, 181.0)])
def test_invalid_datum_is_rejected(bad):
    with pytest.raises(ValueError):
        LocalTangentPlane(*bad)


def test_nan_input_is_rejected():
    plane = LocalTangentPlane(48.0, 11.0)
    with pytest.raises(ValueError, match='NaN'):
        plane.enu_from_geodetic(np.array([48.0, np.nan]), np.array([11.0, 11.0]))
    with pytest.raises(ValueError, match='NaN'):
        plane.geodetic_from_enu(np.nan, 0.0)
