"""FoV and heading transforms keep the heading label consistent with the rendered pixels."""

import math

import numpy as np
import pytest

from ciper_ros.data.transforms import column_azimuth_rad, heading_prior, limit_fov, roll_panorama
from ciper_ros.synth.city import generate_city
from ciper_ros.synth.render import CameraPose, GroundRenderer
from ciper_ros.synth.world import CityConfig


@pytest.fixture(scope='module')
def renderer():
    world = generate_city(CityConfig(seed=3, size_m=200.0, res_m=0.25))
    return GroundRenderer(world, epoch=0)


def test_a_camera_inside_a_facade_renders(renderer):
    # regression: a ray entering a building at distance 0 divided by zero in the kernel
    world = renderer.world
    b = world.buildings
    pose = CameraPose(float(b.center_xy_m[0, 0]), float(b.center_xy_m[0, 1]), 0.3)
    for r in (renderer, GroundRenderer(world, epoch=0, use_numba=False)):
        img = r.panorama(pose, width=64, height=16)
        assert img.shape == (16, 64, 3)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.all(np.abs(a.astype(int) - b.astype(int)) <= 2, axis=-1)))


@pytest.mark.parametrize('k', [1, 37, -90, 200])
def test_roll_label_matches_a_render_at_that_heading(renderer, k):
    pose = CameraPose(5.0, -8.0, 0.4)
    w = 256
    pano = renderer.panorama(pose, width=w, height=64)
    rolled, yaw = roll_panorama(pano, pose.yaw_rad, k)
    assert math.isclose(math.remainder(yaw - (0.4 + 2 * math.pi * k / w), 2 * math.pi), 0.0,
                        abs_tol=1e-9)
    again = renderer.panorama(CameraPose(5.0, -8.0, yaw), width=w, height=64)
    assert agreement(rolled, again) > 0.99


@pytest.mark.parametrize('fov_deg,centre_deg', [(90.0, 0.0), (90.0, 123.0), (70.0, -40.0),
                                                (120.0, 181.0)])
def test_limited_fov_label_is_the_slice_centre(renderer, fov_deg, centre_deg):
    pose = CameraPose(-12.0, 6.0, math.radians(30.0))   # beside a facade
    w = 360
    pano = renderer.panorama(pose, width=w, height=90)
    sl, yaw = limit_fov(pano, pose.yaw_rad, fov_deg, centre_rad=math.radians(centre_deg))
    n = sl.shape[1]
    assert n == round(w * fov_deg / 360)
    # the label is within half a column of the wanted direction
    assert abs(math.remainder(yaw - math.radians(centre_deg), 2 * math.pi)) <= math.pi / w + 1e-9
    # a panorama rendered at the label heading has the same slice in its middle
    ref = renderer.panorama(CameraPose(-12.0, 6.0, yaw), width=w, height=90)
    start = w // 2 - n // 2
    if n % 2:   # odd slices: the label is the middle pixel's own direction
        start = (w - n) // 2
    assert agreement(sl, ref[:, start:start + n]) > 0.99
    # the released code's bug: keeping the panorama's heading would be off by the slice turn
    if abs(centre_deg - 30.0) > 5:
        assert abs(math.remainder(yaw - pose.yaw_rad, 2 * math.pi)) > math.radians(5)


def test_column_azimuth_and_prior():
    w = 8
    az = column_azimuth_rad(np.arange(w), w, 0.0)
    # columns turn clockwise to the right; centre line (between 3 and 4) faces the heading
    assert np.all(np.diff(np.unwrap(az)) < 0)
    assert math.isclose((az[3] + az[4]) / 2, 0.0, abs_tol=1e-12)
    rng = np.random.default_rng(0)
    d = [math.remainder(heading_prior(3.1, 10.0, rng) - 3.1, 2 * math.pi) for _ in range(500)]
    assert max(abs(x) for x in d) <= math.radians(10.0)
    assert np.std(d) > math.radians(4)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match='expected an'):
        roll_panorama(np.zeros((4, 4)), 0.0, 1)
    with pytest.raises(ValueError, match='fov_deg'):
        limit_fov(np.zeros((4, 8, 3)), 0.0, 0.0)
