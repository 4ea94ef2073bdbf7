"""A pinhole image resampled into a panorama matches the panorama the renderer draws."""


import numpy as np
import pytest

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.geo.reproject import pinhole_footprint, pinhole_to_panorama


@pytest.fixture(scope='module')
def renderer():
    from ciper_ros.synth.city import generate_city
    from ciper_ros.synth.render import GroundRenderer
    from ciper_ros.synth.world import CityConfig

    world = generate_city(CityConfig(seed=11, size_m=200.0))
    return world, GroundRenderer(world, epoch=1)


def test_reprojected_pinhole_agrees_with_the_rendered_panorama(renderer):
    from ciper_ros.synth.pairs import sample_road_pose
    from ciper_ros.synth.render import CameraPose

    world, r = renderer
    cam = PinholeCamera.from_hfov(320, 240, 90.0)
    rng = np.random.default_rng(0)
    fractions = []
    for _ in range(3):
        xy, yaw = sample_road_pose(world, rng, margin_m=30.0)
        pose = CameraPose(xy[0], xy[1], yaw)
        pano = r.panorama(pose, width=1024, height=256).astype(np.int16)
        rep, mask = pinhole_to_panorama(r.pinhole(pose, cam), cam, width=1024, height=256)
        # 90 deg wide around the centre column, about +-37 deg tall at the centre
        cols = np.flatnonzero(mask.any(axis=0))
        assert cols.min() == pytest.approx(384, abs=2) and cols.max() == pytest.approx(639, abs=2)
        assert mask[:, 512].sum() == pytest.approx(256 * 2 * 36.9 / 180, abs=3)
        diff = np.abs(rep.astype(np.int16) - pano).max(axis=2)[mask]
        fractions.append(np.mean(diff <= 24))
    assert min(fractions) > 0.9, fractions        # resampling differs at edges only


def test_footprint_and_errors():
    cam = PinholeCamera.from_hfov(200, 100, 120.0)
    fp = pinhole_footprint(cam, width=360, height=180)
    cols = np.flatnonzero(fp.any(axis=0))
    assert len(cols) == pytest.approx(120, abs=2)          # one column per degree
    assert not fp[:, :100].any() and not fp[:, 260:].any()
    with pytest.raises(ValueError, match='the camera'):
        pinhole_to_panorama(np.zeros((10, 10, 3), np.uint8), cam, width=360, height=180)
