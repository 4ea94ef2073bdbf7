"""Drives: trajectory dynamics, sensor noise statistics, and the rosbag2 they are written to."""

import json
import math

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from ciper_ros.bag.drive import TOPICS, write_drive_bag
from ciper_ros.rosmsg import build as m
from ciper_ros.synth.city import generate_city
from ciper_ros.synth.drive import drive_trajectory, OdomConfig, simulate_odometry, Trajectory
from ciper_ros.synth.gnss import GnssConfig, simulate_gnss
from ciper_ros.synth.recording import DriveConfig
from ciper_ros.synth.world import CityConfig


@pytest.fixture(scope='module')
def city():
    return generate_city(CityConfig(seed=11, size_m=400.0))


def test_trajectory_respects_vehicle_dynamics(city):
    rng = np.random.default_rng(0)
    traj = drive_trajectory(city.roads, rng, duration_s=60.0, v_max_mps=12.0,
                            a_lat_mps2=2.0, keep_inside_m=160.0)
    assert traj.duration_s == pytest.approx(60.0, abs=0.5)
    assert traj.speed_mps.max() <= 12.0 + 1e-6
    assert traj.speed_mps.mean() > 3.0
    t = np.arange(1.0, traj.duration_s - 1.0, 0.1)
    xy, yaw, v, rate = traj.at(t)
    assert np.percentile(np.abs(v * rate), 99) < 2.0 * 1.5  # lateral acceleration
    acc = np.gradient(v, t)
    assert np.percentile(acc, 99.5) < 1.2 * 1.3 and np.percentile(acc, 0.5) > -2.5 * 1.3
    # the vehicle stays on asphalt (its own lane), never inside buildings
    kinds = city.kind[city.index(xy[:, 0], xy[:, 1])[:2]]
    assert np.mean(np.isin(kinds, [1, 2, 3, 4])) > 0.97


def straight(duration_s: float) -> Trajectory:
    t = np.arange(0.0, duration_s, 0.05)
    return Trajectory(t_s=t, xy_m=np.stack([10.0 * t, np.zeros_like(t)], -1),
                      yaw_rad=np.zeros_like(t), speed_mps=np.full_like(t, 10.0))


def test_gnss_noise_statistics_match_the_configuration():
    cfg = GnssConfig(rate_hz=5.0, sigma_m=3.0, bias_sigma_m=2.0, bias_tau_s=30.0,
                     dropout_rate_hz=0.02, dropout_s=(2.0, 6.0))
    traj = straight(6000.0)
    track = simulate_gnss(traj, cfg, np.random.default_rng(1))
    t, meas, fix = track.t_s, track.xy_m, track.fix
    err = meas - traj.at(t)[0]
    expected = math.hypot(cfg.sigma_m, cfg.bias_sigma_m)
    assert np.std(err[:, 0]) == pytest.approx(expected, rel=0.08)
    assert np.std(err[:, 1]) == pytest.approx(expected, rel=0.08)
    assert abs(np.mean(err)) < 0.3
    # correlation at lag tau: only the bias remains, decayed by e^-1
    lag = int(cfg.bias_tau_s * cfg.rate_hz)
    c = np.mean(err[:-lag, 0] * err[lag:, 0]) / np.var(err[:, 0])
    assert c == pytest.approx(math.exp(-1) * cfg.bias_sigma_m ** 2 / expected ** 2, abs=0.08)
    lost = 1.0 - fix.mean()
    assert lost == pytest.approx(cfg.dropout_rate_hz * 4.0, rel=0.35)


def test_odometry_drifts_like_its_error_model():
    traj = straight(120.0)
    cfg = OdomConfig(scale_error=0.02, yaw_rate_bias_dps=0.5)
    t, xy, yaw, v, rate = simulate_odometry(traj, cfg, np.random.default_rng(2))
    assert xy[0].tolist() == [0.0, 0.0]
    dist = np.hypot(*xy[-1])
    assert 1100 < dist < 1300            # ~1200 m with a scale error of a few percent
    # heading is the integrated measured rate: a constant gyro bias drifts it linearly
    dt = 1.0 / cfg.rate_hz
    assert math.remainder(yaw[-1] - rate[:-1].sum() * dt, 2 * math.pi) == pytest.approx(
        0.0, abs=1e-9)
    # the bias is drawn per drive with std yaw_rate_bias_dps; white rate noise averages out
    biases = [math.degrees(simulate_odometry(traj, cfg, np.random.default_rng(s))[4].mean())
              for s in range(200)]
    assert np.std(biases) == pytest.approx(cfg.yaw_rate_bias_dps, rel=0.15)
    assert np.std(v - 10.0) < 1.0


@pytest.fixture(scope='module')
def bag(city, tmp_path_factory):
    out = tmp_path_factory.mktemp('bags') / 'drive'
    cfg = DriveConfig(duration_s=6.0, image_width=160, image_height=120, panorama=True,
                      panorama_size=(128, 32), seed=3)
    return write_drive_bag(city, out, cfg, progress=False), cfg


def test_bag_has_the_standard_topics_at_their_rates(bag):
    path, cfg = bag
    with Reader(path) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        types = {c.topic: c.msgtype for c in reader.connections}
    assert counts[TOPICS['image']] == counts[TOPICS['compressed']] == 61
    assert counts[TOPICS['camera_info']] == 61 and counts[TOPICS['panorama']] == 61
    assert counts[TOPICS['gnss']] == 31 and counts[TOPICS['truth']] == 121
    assert counts[TOPICS['tf_static']] == 1
    assert types[TOPICS['odom']] == 'nav_msgs/msg/Odometry'
    assert path.joinpath('metadata.yaml').is_file() and list(path.glob('*.mcap'))
    info = json.loads(path.joinpath('ciper_drive.json').read_text())
    assert info['camera']['width'] == 160 and info['city']['seed'] == 11
    assert not path.with_name(path.name + '.partial').exists()


def test_bag_messages_decode_and_agree(bag, city):
    path, cfg = bag
    truth, fixes, images = [], [], []
    with Reader(path) as reader:
        for conn, t_ns, raw in reader.messages():
            msg = m.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec \
                if hasattr(msg, 'header') else t_ns
            assert stamp == t_ns  # stamped at capture time
            if conn.topic == TOPICS['truth']:
                truth.append((t_ns, msg.pose.position.x, msg.pose.position.y))
            elif conn.topic == TOPICS['gnss']:
                fixes.append((t_ns, msg))
            elif conn.topic == TOPICS['image']:
                images.append(msg)
    img = images[10]
    assert (img.height, img.width, img.encoding, img.step) == (120, 160, 'rgb8', 480)
    assert len(img.data) == 120 * 160 * 3
    ok = [f for _, f in fixes if f.status.status == 0]
    assert ok and all(f.position_covariance_type == 2 for f in ok)
    sigma = math.sqrt(ok[0].position_covariance[0])
    assert sigma == pytest.approx(math.hypot(3.0, 2.0))
    # GNSS fixes lie near the ground truth (within a few sigma)
    tt = np.array([t for t, _, _ in truth])
    for t_ns, f in fixes:
        if f.status.status != 0:
            assert math.isnan(f.latitude)
            continue
        xy = city.plane.xy_m_from_latlon(np.array([[f.latitude, f.longitude]]))[0]
        k = int(np.argmin(np.abs(tt - t_ns)))
        assert np.hypot(xy[0] - truth[k][1], xy[1] - truth[k][2]) < 6 * sigma


def test_bag_messages_deserialize_with_rclpy(bag):
    rclpy_serialization = pytest.importorskip('rclpy.serialization')
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, NavSatFix
    tf2 = pytest.importorskip('tf2_msgs.msg')
    classes = {TOPICS['image']: Image, TOPICS['compressed']: CompressedImage,
               TOPICS['camera_info']: CameraInfo, TOPICS['gnss']: NavSatFix,
               TOPICS['odom']: Odometry, TOPICS['truth']: PoseStamped,
               TOPICS['tf_static']: tf2.TFMessage, TOPICS['panorama']: CompressedImage}
    path, _ = bag
    seen = set()
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic in seen:
                continue
            msg = rclpy_serialization.deserialize_message(bytes(raw), classes[conn.topic])
            seen.add(conn.topic)
            if conn.topic == TOPICS['tf_static']:
                tf = msg.transforms[0]
                assert (tf.header.frame_id, tf.child_frame_id) == ('base_link',
                                                                   'camera_optical_frame')
            if conn.topic == TOPICS['camera_info']:
                assert msg.width == 160 and msg.k[0] > 0
    assert seen == set(classes)


def test_existing_bag_is_not_overwritten(bag, city):
    path, cfg = bag
    with pytest.raises(FileExistsError):
        write_drive_bag(city, path, cfg, progress=False)


def test_a_drive_records_a_camera_rig_with_its_mounts(city, tmp_path):
    from ciper_ros.bag.drive import rig_frame, rig_topic
    from ciper_ros.geo.camera import RigCamera
    from ciper_ros.geo.reproject import rig_to_panorama
    from ciper_ros.rosmsg.convert import camera_info_to_camera, to_rgb
    from ciper_ros.runtime.mount import Mount, tf_edges
    from ciper_ros.runtime.pipeline import View
    from ciper_ros.runtime.sensors import StaticTransforms

    cfg = DriveConfig(duration_s=1.0, camera_hz=2.0, image_width=160, image_height=90,
                      raw_images=False, rig='front_rear', seed=4)
    path = write_drive_bag(city, tmp_path / 'rig', cfg, progress=False)
    info = json.loads(path.joinpath('ciper_drive.json').read_text())
    assert info['rig']['image_topics'] == [rig_topic('front'), rig_topic('rear')]
    got = {}
    static = StaticTransforms(base_frame='base_link', default=Mount())
    with Reader(path) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        for conn, t_ns, raw in reader.messages():
            msg = m.deserialize(raw, conn.msgtype)
            if conn.topic == TOPICS['tf_static']:
                static.add(tf_edges(msg))
            elif conn.topic.startswith('/rig/'):
                got.setdefault(t_ns, {})[conn.topic] = msg
    for name in ('front', 'rear'):
        assert counts[rig_topic(name)] == counts[rig_topic(name, info=True)] == 3
    mounts = {n: static.mount(rig_frame(n)) for n in ('front', 'rear')}
    assert mounts['front'].source.startswith('tf_static')
    assert (mounts['front'].x_m, mounts['front'].yaw_rad) == pytest.approx((1.0, 0.0))
    assert mounts['rear'].x_m == pytest.approx(-1.0)
    assert abs(math.remainder(mounts['rear'].yaw_rad - math.pi, 2 * math.pi)) < 1e-9
    t0 = sorted(got)[1]
    views = []
    for name in ('front', 'rear'):
        img, ci = got[t0][rig_topic(name)], got[t0][rig_topic(name, info=True)]
        assert img.header.frame_id == ci.header.frame_id == rig_frame(name)
        views.append(View(image=to_rgb(img), camera=camera_info_to_camera(ci)))
    rig = [RigCamera(camera=v.camera, yaw_rad=mounts[n].yaw_rad)
           for v, n in zip(views, ('front', 'rear'), strict=True)]
    _, seen, _ = rig_to_panorama([v.image for v in views], rig, width=256, height=64)
    assert seen.any(axis=0).mean() == pytest.approx(0.5, abs=0.02)   # 2 x 90 of 360 deg
