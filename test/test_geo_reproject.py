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


@pytest.mark.parametrize('yaw_deg, hfov_deg', [(0.0, 90.0), (90.0, 60.0), (-135.0, 120.0),
                                                (180.0, 90.0), (30.0, 45.0)])
def test_a_pinhole_fills_the_azimuths_its_fov_and_mount_yaw_cover(yaw_deg, hfov_deg):
    from ciper_ros.geo.camera import RigCamera
    from ciper_ros.geo.reproject import rig_footprint

    W = 720                                             # two columns per degree
    rc = RigCamera(camera=PinholeCamera.from_hfov(320, 180, hfov_deg),
                   yaw_rad=np.radians(yaw_deg), x_m=0.7, y_m=-0.4)   # offsets: no effect
    cols = np.flatnonzero(rig_footprint([rc], width=W, height=180).any(axis=0))
    assert len(cols) == pytest.approx(2 * hfov_deg, abs=2)
    # the column azimuths (left of the centre column positive) centre on the mount yaw
    az = np.pi - 2 * np.pi * (cols + 0.5) / W
    mean = np.angle(np.exp(1j * az).mean())
    assert np.degrees(abs(np.angle(np.exp(1j * (mean - np.radians(yaw_deg)))))) < 0.6
    edge = np.degrees(np.abs(np.angle(np.exp(1j * (az - np.radians(yaw_deg)))))).max()
    assert edge == pytest.approx(hfov_deg / 2, abs=0.6)


def test_a_surround_rig_agrees_with_the_rendered_panorama(renderer):
    from ciper_ros.geo.camera import rig_preset, RigCamera
    from ciper_ros.geo.reproject import rig_to_panorama
    from ciper_ros.synth.pairs import sample_road_pose
    from ciper_ros.synth.render import CameraPose

    world, r = renderer
    # surround4's cameras at the rig's centre (no parallax, to compare with the panorama)
    rig = [RigCamera(camera=c.camera, yaw_rad=c.yaw_rad, name=c.name)
           for c in rig_preset('surround4', width=320, height=240)]
    xy, yaw = sample_road_pose(world, np.random.default_rng(5), margin_m=30.0)
    pose = CameraPose(xy[0], xy[1], yaw)
    images = [r.pinhole(CameraPose(xy[0], xy[1], yaw + c.yaw_rad), c.camera) for c in rig]
    pano, seen, owner = rig_to_panorama(images, rig, width=1024, height=256)
    assert seen.any(axis=0).all()                        # four 100-degree cameras: 360
    ref = r.panorama(pose, width=1024, height=256).astype(np.int16)
    diff = np.abs(pano.astype(np.int16) - ref).max(axis=2)[seen]
    assert np.mean(diff <= 24) > 0.9
    # each column belongs to the camera whose axis is nearest: the front one at the centre,
    # the left one (yaw +90 deg) a quarter turn left of it
    assert owner[128, 512] == 0 and owner[128, 256] == 1 and owner[128, 768] == 3
    assert owner[128, 0] == 2
    # a front + rear pair leaves the sides unseen, and they stay black
    pair = rig_preset('front_rear', width=320, height=240)
    p2, seen2, _ = rig_to_panorama([images[0], images[2]], pair, width=1024, height=256)
    cols = seen2.any(axis=0)
    assert cols.sum() == pytest.approx(512, abs=4) and not cols[256] and not cols[768]
    assert (p2[:, ~cols] == 0).all()
    with pytest.raises(ValueError, match='needs as many images'):
        rig_to_panorama(images[:3], rig, width=1024, height=256)
    with pytest.raises(ValueError, match='unknown camera rig'):
        rig_preset('octopus')


def test_the_cli_spells_the_rig_presets_like_the_geometry():
    from ciper_ros.cli.common import RIG_PRESETS as CLI
    from ciper_ros.geo.camera import RIG_PRESETS

    assert CLI == RIG_PRESETS
