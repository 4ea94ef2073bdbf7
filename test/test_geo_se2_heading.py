import math

import numpy as np
import pytest

from ciper_ros.geo import (
    bearing_deg_from_yaw_rad,
    bearing_rad_from_yaw_rad,
    SE2,
    wrap_angle_rad,
    yaw_rad_from_bearing_deg,
    yaw_rad_from_bearing_rad,
)


def random_pose(rng, parent=None, child=None):
    return SE2(*rng.uniform(-50, 50, 2), rng.uniform(-math.pi, math.pi),
               parent=parent, child=child)


def test_compose_matches_matrices():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = random_pose(rng), random_pose(rng)
        assert np.allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-9)


def test_inverse_and_apply():
    rng = np.random.default_rng(1)
    for _ in range(50):
        T = random_pose(rng, 'map', 'base')
        ident = T @ T.inv()
        assert ident.parent == 'map' and ident.child == 'map'
        assert np.allclose(ident.matrix(), np.eye(3), atol=1e-9)
        p = rng.uniform(-10, 10, (7, 2))
        assert np.allclose(T.inv().apply(T.apply(p)), p, atol=1e-9)


def test_apply_known_values():
    T_map_base = SE2(10.0, 5.0, math.pi / 2, parent='map', child='base')
    # a point 1 m ahead of a vehicle facing north (yaw 90 deg) is 1 m north of it
    assert np.allclose(T_map_base.apply([1.0, 0.0]), [10.0, 6.0])
    assert np.allclose(T_map_base.apply([[0.0, 1.0]]), [[9.0, 5.0]])


def test_frames_are_checked():
    T_map_odom = SE2(1, 2, 0.1, parent='map', child='odom')
    T_odom_base = SE2(3, 4, 0.2, parent='odom', child='base')
    T_map_base = T_map_odom @ T_odom_base
    assert (T_map_base.parent, T_map_base.child) == ('map', 'base')
    with pytest.raises(ValueError, match="frame 'base' != 'map'"):
        T_map_base @ T_map_odom
    assert (SE2(0, 0, 0) @ T_odom_base).child == 'base'  # unnamed frames compose freely


def test_from_matrix_and_distance():
    T = SE2(3.0, -4.0, 2.5)
    assert SE2.from_matrix(T.matrix()) == T
    d_xy, d_yaw = T.distance_to(SE2(0.0, 0.0, 2.5 - 2 * math.pi + 0.1))
    assert d_xy == pytest.approx(5.0) and d_yaw == pytest.approx(0.1)
    with pytest.raises(ValueError):
        SE2(float('nan'), 0, 0)
    with pytest.raises(ValueError):
        SE2.from_matrix(np.eye(4))


def test_yaw_is_wrapped_to_half_open_interval():
    assert SE2(0, 0, 3 * math.pi).yaw_rad == pytest.approx(math.pi)
    assert wrap_angle_rad(-math.pi) == pytest.approx(math.pi)
    assert wrap_angle_rad(math.pi) == pytest.approx(math.pi)
    w = wrap_angle_rad(np.linspace(-20, 20, 1001))
    assert np.all(w > -math.pi) and np.all(w <= math.pi)
    assert np.allclose(np.cos(w), np.cos(np.linspace(-20, 20, 1001)))


@pytest.mark.parametrize('bearing_deg,yaw_deg', [(0, 90), (90, 0), (180, -90), (270, 180),
                                                 (45, 45), (315, 135)])
def test_bearing_yaw_known_values(bearing_deg, yaw_deg):
    yaw = yaw_rad_from_bearing_deg(bearing_deg)
    assert math.degrees(yaw) == pytest.approx(yaw_deg)
    assert bearing_deg_from_yaw_rad(yaw) == pytest.approx(bearing_deg % 360)


def test_bearing_yaw_round_trip_arrays():
    rng = np.random.default_rng(0)
    bearing = rng.uniform(0, 2 * math.pi, 100)
    yaw = yaw_rad_from_bearing_rad(bearing)
    assert np.all((yaw > -math.pi) & (yaw <= math.pi))
    assert np.allclose(bearing_rad_from_yaw_rad(yaw), bearing)
    assert bearing_deg_from_yaw_rad(math.radians(90.0) + 1e-17) == pytest.approx(0.0)


def test_headings_that_round_onto_the_end_of_the_range():
    # one ulp above pi / 2: pi / 2 - yaw is -2.2e-16, and its mod 2 pi rounds to 2 pi itself
    # (the old test added 1e-17 rad, which rounds away before it reaches the guard)
    yaw = float(np.nextafter(math.pi / 2, 4.0))
    assert yaw != math.pi / 2 and math.radians(90.0 + 1e-14) == yaw
    assert bearing_rad_from_yaw_rad(yaw) == 0.0
    assert bearing_deg_from_yaw_rad(yaw) == 0.0
    arr = np.array([yaw, math.pi / 2, -math.pi / 2])
    assert bearing_deg_from_yaw_rad(arr).tolist() == [0.0, 0.0, 180.0]
    assert np.all(bearing_rad_from_yaw_rad(arr) < 2 * math.pi)
    # a few ulp further: the bearing is just below 2 pi, its degrees just below 360
    assert 359.9999999 < bearing_deg_from_yaw_rad(math.pi / 2 + 1e-15) < 360.0
    # wrap to (-pi, pi]: one ulp above pi is pi (mod rounds to 2 pi there), never -pi
    above_pi = float(np.nextafter(math.pi, 4.0))
    assert wrap_angle_rad(above_pi) == math.pi
    assert wrap_angle_rad(np.array([above_pi, -math.pi, math.pi])).tolist() == [math.pi] * 3
