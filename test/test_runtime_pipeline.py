"""The one per-frame pipeline: stamp guard, CameraInfo by stamp, prior, mount, odometry."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.geo.se2 import SE2
from ciper_ros.maps.open import open_store
from ciper_ros.model.build import load_model
from ciper_ros.rosmsg import build as m
from ciper_ros.runtime.index import build_index, TileIndex
from ciper_ros.runtime.localizer import Localizer, LocalizerConfig, Prior
from ciper_ros.runtime.mount import base_from_camera, camera_from_base, Mount
from ciper_ros.runtime.pipeline import Frame, FramePipeline, PipelineConfig
from ciper_ros.runtime.sensors import CameraInfoBuffer, OdometryBuffer
from ciper_ros.synth.folder import city_paths, write_city_folder
from ciper_ros.synth.pairs import sample_road_pose
from ciper_ros.synth.render import CameraPose, GroundRenderer
from ciper_ros.synth.world import CityConfig, World

SHIPPED = Path(__file__).resolve().parents[1] / 'models' / 'ciper_t_synthetic.pt'
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def test_camera_info_is_matched_by_stamp_not_by_arrival():
    a, b = PinholeCamera.from_hfov(640, 480, 90.0), PinholeCamera.from_hfov(320, 240, 90.0)
    buf = CameraInfoBuffer(tolerance_s=0.02)
    assert buf.at(T0) == (None, 'no CameraInfo received')
    buf.add(T0 + 100 * MS, b)           # arrives first, is newer
    buf.add(T0, a)                      # arrives last: the one with the image's stamp
    assert buf.at(T0)[0] is a
    assert buf.at(T0 + 100 * MS)[0] is b
    assert buf.at(T0 + 150 * MS)[0] is b             # the latest at or before
    assert buf.at(T0 + 50 * MS)[0] is a
    assert buf.at(T0 + 85 * MS)[0] is b              # 15 ms newer: within the tolerance
    assert buf.at(T0 + 75 * MS)[0] is a              # 25 ms newer: beyond it
    cam, why = buf.at(T0 - 30 * MS)
    assert cam is None and 'at or before the image stamp' in why


def test_odometry_is_interpolated_on_se2_across_the_yaw_wrap():
    buf = OdometryBuffer(max_gap_s=0.5, tolerance_s=0.05)
    buf.add(T0, SE2(0.0, 0.0, math.radians(179.0), parent='odom', child='base_link'))
    buf.add(T0 + 100 * MS, SE2(1.0, 2.0, math.radians(-179.0), parent='odom',
                               child='base_link'))
    mid = buf.at(T0 + 25 * MS)
    assert (mid.x_m, mid.y_m) == pytest.approx((0.25, 0.5))
    assert abs(math.remainder(mid.yaw_rad - math.radians(179.5), 2 * math.pi)) < 1e-9
    assert buf.at(T0 + 120 * MS).x_m == 1.0           # nearest, 20 ms after the last
    assert buf.at(T0 + 200 * MS) is None              # 100 ms: too far from any message
    buf.add(T0 + 900 * MS, SE2(5.0, 5.0, 0.0))
    assert buf.at(T0 + 500 * MS) is None              # a gap of 0.8 s is not bridged


def test_mount_composition_is_se2():
    mount = Mount(1.5, -0.4, math.radians(10))
    xy, yaw = np.array([10.0, -3.0]), 0.7
    cam_xy, cam_yaw = camera_from_base(xy, yaw, mount)
    back_xy, back_yaw, cov = base_from_camera(cam_xy, cam_yaw, np.diag([1.0, 1.0, 0.01]),
                                              mount)
    assert back_xy == pytest.approx(xy) and back_yaw == pytest.approx(yaw)
    T = SE2(*xy, yaw) @ SE2(1.5, -0.4, math.radians(10))
    assert (cam_xy, cam_yaw) == (pytest.approx(T.xy_m), pytest.approx(T.yaw_rad))
    lever = math.hypot(1.5, 0.4)       # heading uncertainty grows position by the lever arm
    assert cov[0, 0] + cov[1, 1] == pytest.approx(2.0 + 0.01 * lever ** 2)


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp('pipeline')
    write_city_folder(root / 'city', CityConfig(seed=3, size_m=400.0), zooms=(19,),
                      progress=False)
    world_path, map_path = city_paths(root / 'city')
    build_index(map_path=map_path, model_path=SHIPPED, out_dir=root / 'index', progress=False)
    index = TileIndex(root / 'index', model_path=SHIPPED)
    loc = Localizer(model=load_model(SHIPPED), index=index, store=open_store(map_path),
                    config=LocalizerConfig(min_match_prob=0.0))   # the match gate off
    world = World.load(world_path)
    rng = np.random.default_rng(7)
    xy, yaw = sample_road_pose(world, rng, margin_m=60.0)
    renderer = GroundRenderer(world, epoch=0)
    cam = PinholeCamera.from_hfov(256, 144, 90.0)
    lat, lon = world.plane.latlon_from_xy_m(xy[None])[0]
    return {'loc': loc, 'world': world, 'xy': xy, 'yaw': yaw, 'camera': cam,
            'pano': renderer.panorama(CameraPose(xy[0], xy[1], yaw), width=256, height=64),
            'pinhole': renderer.pinhole(CameraPose(xy[0], xy[1], yaw), cam),
            'latlon': (float(lat), float(lon))}


def _fix(t_ns: int, lat: float, lon: float, sigma_m: float = 5.0):
    return m.navsatfix(t_ns, 'gnss', lat, lon, 0.0, status=0, sigma_m=sigma_m)


def test_the_pipeline_equals_the_localizer_for_a_camera_at_base_link(scene):
    loc = scene['loc']
    prior = Prior(*scene['latlon'], sigma_m=5.0)
    rec = FramePipeline(localizer=loc, use_gnss=False).process(
        Frame(stamp_ns=T0, image=scene['pano'], prior=prior))
    res = loc.localize(scene['pano'], prior)
    assert rec.ok and res.ok
    assert (rec.x_m, rec.y_m) == (float(res.xy_m[0]), float(res.xy_m[1]))
    assert abs(math.remainder(rec.yaw_rad - res.yaw_rad, 2 * math.pi)) < 1e-12
    assert np.array_equal(rec.covariance, res.covariance)
    assert rec.tile_id == res.tile_id and rec.candidate_tiles == tuple(res.candidates)
    assert rec.prior_sigma_m == 5.0 and rec.mount_source == 'parameters'


def test_a_late_camera_info_pairs_with_its_frame(scene):
    """A CameraInfo 10 ms after its image is used; a wrong-size one at another stamp is not."""
    pipe = FramePipeline(localizer=scene['loc'],
                         config=PipelineConfig(camera_info_tolerance_s=0.02))
    pipe.add_fix(T0 - 50 * MS, _fix(T0 - 50 * MS, *scene['latlon']))
    wrong = PinholeCamera.from_hfov(640, 360, 90.0)
    pipe.add_camera_info(T0 - 500 * MS, m.camera_info(T0 - 500 * MS, 'cam', wrong))
    pipe.add_camera_info(T0 + 10 * MS, m.camera_info(T0 + 10 * MS, 'cam', scene['camera']))
    rec = pipe.process(Frame(stamp_ns=T0, image=scene['pinhole'], frame_id='cam'))
    assert rec.ok, rec.reason
    # without the late one the older, wrong-size CameraInfo is the match: refused by size
    pipe2 = FramePipeline(localizer=scene['loc'])
    pipe2.add_fix(T0 - 50 * MS, _fix(T0 - 50 * MS, *scene['latlon']))
    pipe2.add_camera_info(T0 - 500 * MS, m.camera_info(T0 - 500 * MS, 'cam', wrong))
    rec2 = pipe2.process(Frame(stamp_ns=T0, image=scene['pinhole'], frame_id='cam'))
    assert not rec2.ok and rec2.reason == 'CameraInfo is 640x360, the image 256x144'
    pipe3 = FramePipeline(localizer=scene['loc'])
    pipe3.add_fix(T0 - 50 * MS, _fix(T0 - 50 * MS, *scene['latlon']))
    rec3 = pipe3.process(Frame(stamp_ns=T0, image=scene['pinhole'], frame_id='cam'))
    assert not rec3.ok and 'no CameraInfo received' in rec3.reason


def test_stamp_guard_out_of_order_and_time_jumps(scene):
    pipe = FramePipeline(localizer=scene['loc'])
    pipe.add_fix(T0, _fix(T0, *scene['latlon']))
    assert pipe.process(Frame(stamp_ns=T0 + 100 * MS, image=scene['pano'])).ok
    late = pipe.process(Frame(stamp_ns=T0 + 50 * MS, image=scene['pano']))
    assert not late.ok and late.reason.startswith('image stamp 0.050 s older')
    # the clock went back 5 s (a bag looped): fixes of the old timeline are void
    back = pipe.process(Frame(stamp_ns=T0 - 5 * 1_000_000_000, image=scene['pano']))
    assert not back.ok and back.reason == 'no GNSS fix at or before the image stamp'
    assert pipe.time_jumps == 1 and len(pipe.fixes) == 0


def test_bad_images_and_missing_priors_are_reasons(scene):
    pipe = FramePipeline(localizer=scene['loc'])
    bad = pipe.process(Frame(stamp_ns=T0, image=None, error='bad image: truncated jpeg'))
    assert not bad.ok and bad.reason == 'bad image: truncated jpeg' and pipe.bad_images == 1
    nofix = pipe.process(Frame(stamp_ns=T0 + MS, image=scene['pano']))
    assert not nofix.ok and nofix.reason == 'no GNSS fix at or before the image stamp'


def test_map_to_odom_comes_from_odometry_at_the_image_stamp(scene):
    pipe = FramePipeline(localizer=scene['loc'],
                         config=PipelineConfig(mount=Mount(1.0, 0.0, 0.0)))
    pipe.add_fix(T0, _fix(T0, *scene['latlon']))
    pipe.add_odometry(T0 - 50 * MS, 10.0, 20.0, 0.3)
    pipe.add_odometry(T0 + 50 * MS, 12.0, 20.0, 0.5)
    rec = pipe.process(Frame(stamp_ns=T0, image=scene['pano']))
    assert rec.ok and rec.map_to_odom is not None
    T_map_odom = SE2(*rec.map_to_odom)
    T_odom_base = SE2(11.0, 20.0, 0.4)          # interpolated at the image stamp
    T_map_base = T_map_odom @ T_odom_base
    assert (T_map_base.x_m, T_map_base.y_m) == (pytest.approx(rec.x_m), pytest.approx(rec.y_m))
    assert T_map_base.yaw_rad == pytest.approx(rec.yaw_rad)
    # base_link is the camera moved back by the mount
    cx, cy, cyaw = rec.camera_xy_yaw
    assert rec.x_m == pytest.approx(cx - math.cos(cyaw)) and rec.yaw_rad == pytest.approx(cyaw)
    none = FramePipeline(localizer=scene['loc'])
    none.add_fix(T0, _fix(T0, *scene['latlon']))
    assert none.process(Frame(stamp_ns=T0, image=scene['pano'])).map_to_odom is None


def test_a_corrupt_checkpoint_is_named_as_such_not_as_a_foreign_index(scene, tmp_path):
    from ciper_ros.runtime.assemble import open_localizer
    from ciper_ros.util.errors import CorruptFileError

    bad = tmp_path / 'truncated.pt'
    bad.write_bytes(SHIPPED.read_bytes()[:200_000])
    with pytest.raises(CorruptFileError, match='corrupt checkpoint'):
        open_localizer(index=scene['loc'].index.dir, model=bad)


def test_the_debug_view_draws_the_scene_where_the_map_has_it(scene):
    """Tracked pose, frame, particles and fix at their map pixels; outside the map: grey."""
    from ciper_ros.runtime.debug_view import (
        COLOURS,
        DebugScene,
        ellipse_xy_m,
        NO_MAP_RGB,
        PlanarEstimate,
        render_debug_image,
    )
    from ciper_ros.runtime.tracker import DriveTracker

    loc = scene['loc']
    pipe = FramePipeline(localizer=loc, tracker=DriveTracker())
    pipe.add_odometry(T0 - 100 * MS, 0.0, 0.0, 0.0)
    pipe.add_fix(T0 - 100 * MS, _fix(T0 - 100 * MS, *scene['latlon'], sigma_m=4.0))
    pipe.add_odometry(T0 + 100 * MS, 1.0, 0.0, 0.0)      # the filter 0.5 m ahead of the image
    rec = pipe.process(Frame(stamp_ns=T0, image=scene['pano']))
    assert rec.ok, rec.reason
    sc = pipe.debug_scene(rec, max_particles=200)
    assert sc.tracked is not None and sc.frame is not None and len(sc.particles) == 200
    # each decoded tile names up to modes_per_tile places; a fix start's heading is the
    # frames' word until a GNSS course agrees, so the frame took the fix as its prior
    assert rec.candidates <= len(sc.hypotheses) <= loc.cfg.modes_per_tile * rec.candidates
    assert sc.status.startswith('gnss prior')
    # at the image stamp: the particles and the estimate were moved back by odometry
    est_now = pipe.tracker.estimate()
    assert np.hypot(*(est_now.xy_m - sc.tracked.xy_m)) == pytest.approx(0.5, abs=0.01)
    moved = pipe.tracker.particles_at(T0 + 100 * MS)
    assert np.abs(moved[:, :2].mean(0) - est_now.xy_m).max() < 0.3   # drawn by weight
    side, px = 80.0, 400
    img = render_debug_image(sc, store=loc.store, plane=loc.index.plane, side_m=side, px=px,
                             zoom=loc.index.spec.zoom)
    if os.environ.get('CIPER_DEBUG_VIEW_PNG'):           # to look at it
        import cv2
        cv2.imwrite(os.environ['CIPER_DEBUG_VIEW_PNG'], img[..., ::-1])
    assert img.shape == (px, px, 3) and img.dtype == np.uint8
    mpp = side / px
    center = sc.center_xy_m()
    assert np.array_equal(center, sc.tracked.xy_m)

    def uv(xy):
        return (int(round(px / 2 + (xy[0] - center[0]) / mpp)),
                int(round(px / 2 - (xy[1] - center[1]) / mpp)))

    # the GNSS fix's cross is red at the fix's pixel, unless a pose arrow covers it
    u, v = uv(sc.fix_xy_m)
    patch = img[v - 5:v + 6, u - 5:u + 6].reshape(-1, 3)
    assert (patch == COLOURS['gnss']).all(axis=1).sum() >= 5
    # far from any drawing (top-right corner) the picture is the map crop itself
    lat, lon = loc.index.plane.latlon_from_xy_m(center[None])[0]
    crop = loc.store.crop((float(lat), float(lon)), side, px, zoom=loc.index.spec.zoom).image_rgb
    corner = (slice(0, 40), slice(px - 60, px))
    same = (img[corner] == crop[corner]).all(axis=2)
    assert same.mean() > 0.9           # a stray hypothesis arrow may cross it, no more
    # a scene outside the map: a grey view that says so, no exception
    far = DebugScene(stamp_ns=T0, tracked=PlanarEstimate(xy_m=np.array([5e4, 5e4]),
                                                         yaw_rad=0.0))
    grey = render_debug_image(far, store=loc.store, plane=loc.index.plane, px=128)
    assert (grey[60:70, 90:100] == NO_MAP_RGB).all()
    empty = render_debug_image(DebugScene(stamp_ns=T0), store=loc.store,
                               plane=loc.index.plane, px=128)
    assert empty.shape == (128, 128, 3)
    # the 95 % ellipse: every point at Mahalanobis distance^2 5.991
    cov = np.array([[4.0, 1.5], [1.5, 2.0]])
    pts = ellipse_xy_m([3.0, -2.0], cov) - [3.0, -2.0]
    d2 = np.einsum('ni,ij,nj->n', pts, np.linalg.inv(cov), pts)
    assert d2 == pytest.approx(np.full(len(pts), 5.991), rel=1e-9)


def test_a_camera_rig_is_one_ground_input(scene):
    """Four cameras from their mounts, one panorama: localized where the panorama is."""
    from ciper_ros.geo.camera import rig_preset
    from ciper_ros.runtime.pipeline import View

    world, xy, yaw = scene['world'], scene['xy'], scene['yaw']
    renderer = GroundRenderer(world, epoch=0)
    rig = rig_preset('surround4', width=256, height=144)
    c, s = math.cos(yaw), math.sin(yaw)
    views = tuple(View(image=renderer.pinhole(CameraPose(
        xy[0] + c * r.x_m - s * r.y_m, xy[1] + s * r.x_m + c * r.y_m, yaw + r.yaw_rad),
        r.camera), camera=r.camera, frame_id=r.name,
        mount=Mount(r.x_m, r.y_m, r.yaw_rad, source='test')) for r in rig)
    pipe = FramePipeline(localizer=scene['loc'], use_gnss=False)
    prior = Prior(*scene['latlon'], sigma_m=5.0)
    rec = pipe.process(Frame(stamp_ns=T0, image=None, prior=prior, views=views))
    pano = pipe.process(Frame(stamp_ns=T0 + MS, image=scene['pano'], prior=prior))
    assert rec.ok, rec.reason
    assert rec.mount_source == 'rig of 4 cameras' and rec.candidates == pano.candidates
    truth = scene['world'].plane.xy_m_from_latlon(np.array([scene['latlon']]))[0]
    err = math.hypot(rec.x_m - truth[0], rec.y_m - truth[1])
    err_pano = math.hypot(pano.x_m - truth[0], pano.y_m - truth[1])
    assert err < max(3.0, 2 * err_pano), (err, err_pano)
    assert abs(math.degrees(math.remainder(rec.yaw_rad - yaw, 2 * math.pi))) < 10.0
    # a view of the wrong size is a reason, not an exception
    bad = (View(image=views[0].image[:100], camera=rig[0].camera, mount=Mount()),)
    out = pipe.process(Frame(stamp_ns=T0 + 2 * MS, image=None, prior=prior, views=bad))
    assert not out.ok and 'its camera 256x144' in out.reason
