"""Write a synthetic drive as a rosbag2 (mcap or sqlite3) with the standard topics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import math
import os
from pathlib import Path
import shutil

import numpy as np
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from ciper_ros.bag import messages as m
from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.synth.drive import (
    drive_trajectory,
    GnssConfig,
    OdomConfig,
    simulate_gnss,
    simulate_odometry,
)
from ciper_ros.synth.render import CameraPose, GroundRenderer
from ciper_ros.synth.world import World

TOPICS = {
    'image': '/camera/image_raw',
    'compressed': '/camera/image_raw/compressed',
    'camera_info': '/camera/camera_info',
    'panorama': '/camera_pano/image_raw/compressed',
    'gnss': '/gnss/fix',
    'odom': '/odom',
    'truth': '/ground_truth/pose',
    'tf_static': '/tf_static',
}
# camera optical frame (x right, y down, z forward) in base_link (x forward, y left, z up)
Q_BASE_OPTICAL = (-0.5, 0.5, -0.5, 0.5)
T0_NS = 1_700_000_000 * 1_000_000_000  # bag start: a fixed, realistic epoch


@dataclass(frozen=True)
class DriveConfig:
    duration_s: float = 60.0
    seed: int = 0
    epoch: int = 1
    camera_hz: float = 10.0
    truth_hz: float = 20.0
    image_width: int = 320
    image_height: int = 240
    hfov_deg: float = 90.0
    camera_xyz_m: tuple[float, float, float] = (1.5, 0.0, 1.6)  # in base_link
    raw_images: bool = True
    panorama: bool = False
    panorama_size: tuple[int, int] = (512, 128)   # width, height
    jpeg_quality: int = 90
    storage: str = 'mcap'
    gnss: GnssConfig = field(default_factory=GnssConfig)
    odom: OdomConfig = field(default_factory=OdomConfig)


def _qos(durability: QosDurability, reliability: QosReliability, depth: int = 10) -> Qos:
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth, reliability=reliability,
               durability=durability, deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


def write_drive_bag(world: World, out: str | os.PathLike, cfg: DriveConfig, *,
                    overwrite: bool = False, progress: bool = True) -> Path:
    """Simulate a drive in ``world`` and write it as a rosbag2 folder (atomically).

    Also writes ``ciper_drive.json`` in the bag folder: datum, camera, sensor settings.
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f'{out} exists; pass overwrite=True to replace it')
    # rosbag2 names its storage file after the folder: build in <out>.partial/<name>/ and
    # move the finished folder into place
    staging = out.with_name(out.name + '.partial')
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    partial = staging / out.name
    rng = np.random.default_rng([world.config.seed, cfg.seed, 0xD71E])
    half = world.size_px * world.res_m / 2.0
    traj = drive_trajectory(world.roads, rng, duration_s=cfg.duration_s,
                            keep_inside_m=half - 40.0)
    renderer = GroundRenderer(world, epoch=cfg.epoch, seed=cfg.seed)
    camera = PinholeCamera.from_hfov(cfg.image_width, cfg.image_height, cfg.hfov_deg)
    plane = world.plane
    storage = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[cfg.storage]
    ts = m.typestore()
    sensor = _qos(QosDurability.VOLATILE, QosReliability.BEST_EFFORT, 5)
    reliable = _qos(QosDurability.VOLATILE, QosReliability.RELIABLE, 10)
    latched = _qos(QosDurability.TRANSIENT_LOCAL, QosReliability.RELIABLE, 1)

    # everything is computed up front so messages can be written in time order
    events: list[tuple[int, str, object]] = []
    cam_t = np.arange(0.0, traj.duration_s + 1e-9, 1.0 / cfg.camera_hz)
    g_t, g_xy, g_fix = simulate_gnss(traj, cfg.gnss, rng)
    o_t, o_xy, o_yaw, o_v, o_rate = simulate_odometry(traj, cfg.odom, rng)
    tr_t = np.arange(0.0, traj.duration_s + 1e-9, 1.0 / cfg.truth_hz)
    # body motion: slow pitch and roll of the camera (suspension, road camber)
    n = len(cam_t)
    pitch = np.convolve(rng.normal(0, math.radians(0.6), n + 10), np.ones(11) / 11 ** 0.5,
                        mode='valid')[:n] * 0.5
    roll = np.convolve(rng.normal(0, math.radians(0.4), n + 10), np.ones(11) / 11 ** 0.5,
                       mode='valid')[:n] * 0.5
    reported = cfg.gnss.reported_sigma_m or math.hypot(cfg.gnss.sigma_m, cfg.gnss.bias_sigma_m)

    writer = Writer(partial, version=9, storage_plugin=storage)
    writer.open()
    try:
        conns = {}

        def conn(key, typename, qos):
            if key not in conns:
                conns[key] = writer.add_connection(TOPICS[key], typename, typestore=ts,
                                                   offered_qos_profiles=[qos])
            return conns[key]
        conn('tf_static', m.TF_MESSAGE, latched)
        if cfg.raw_images:
            conn('image', m.IMAGE, sensor)
        conn('compressed', m.COMPRESSED_IMAGE, sensor)
        conn('camera_info', m.CAMERA_INFO, reliable)
        if cfg.panorama:
            conn('panorama', m.COMPRESSED_IMAGE, sensor)
        conn('gnss', m.NAVSATFIX, sensor)
        conn('odom', m.ODOMETRY, reliable)
        conn('truth', m.POSE_STAMPED, reliable)

        def ns(t_s: float) -> int:
            return T0_NS + int(round(t_s * 1e9))

        mounts = [(ns(0.0), 'base_link', 'camera_optical_frame', cfg.camera_xyz_m,
                   Q_BASE_OPTICAL)]
        if cfg.panorama:        # the panorama's centre column looks along base_link +x
            mounts.append((ns(0.0), 'base_link', 'camera_pano_frame', cfg.camera_xyz_m,
                           (0.0, 0.0, 0.0, 1.0)))
        events.append((ns(0.0), 'tf_static', m.tf_message(mounts)))
        for t, xy, fix in zip(g_t, g_xy, g_fix, strict=True):
            if fix:
                lat, lon = plane.latlon_from_xy_m(xy)[0]
                msg = m.navsatfix(ns(t), 'gnss_link', lat, lon, float(rng.normal(0, 3.0)),
                                  status=0, sigma_m=reported)
            else:
                msg = m.navsatfix(ns(t), 'gnss_link', math.nan, math.nan, math.nan,
                                  status=-1, sigma_m=None)
            events.append((ns(t), 'gnss', msg))
        for i, t in enumerate(o_t):
            events.append((ns(t), 'odom', m.odometry(ns(t), o_xy[i, 0], o_xy[i, 1], o_yaw[i],
                                                     o_v[i], o_rate[i])))
        xy_tr, yaw_tr, _, _ = traj.at(tr_t)
        for i, t in enumerate(tr_t):
            events.append((ns(t), 'truth', m.pose_stamped(ns(t), 'map', xy_tr[i, 0],
                                                          xy_tr[i, 1], 0.0, yaw_tr[i])))
        events.sort(key=lambda e: e[0])
        for t_ns, key, msg in events:
            writer.write(conns[key], t_ns, m.serialize(msg))

        # camera frames: rendered and written in order after the other streams (rosbag2
        # readers order by timestamp, not by write order)
        xy_c, yaw_c, _, _ = traj.at(cam_t)
        fwd = np.stack([np.cos(yaw_c), np.sin(yaw_c)], -1)
        left = np.stack([-np.sin(yaw_c), np.cos(yaw_c)], -1)
        cam_xy = xy_c + fwd * cfg.camera_xyz_m[0] + left * cfg.camera_xyz_m[1]
        for i in tqdm(range(len(cam_t)), desc='camera frames', unit='frame',
                      disable=None if progress else True, leave=False):
            t_ns = ns(cam_t[i])
            pose = CameraPose(cam_xy[i, 0], cam_xy[i, 1], yaw_c[i], z_m=cfg.camera_xyz_m[2],
                              pitch_rad=pitch[i], roll_rad=roll[i])
            rgb = renderer.pinhole(pose, camera)
            if cfg.raw_images:
                writer.write(conns['image'], t_ns,
                             m.serialize(m.image_raw(t_ns, 'camera_optical_frame', rgb)))
            writer.write(conns['compressed'], t_ns, m.serialize(m.image_compressed(
                t_ns, 'camera_optical_frame', rgb, quality=cfg.jpeg_quality)))
            writer.write(conns['camera_info'], t_ns,
                         m.serialize(m.camera_info(t_ns, 'camera_optical_frame', camera)))
            if cfg.panorama:
                pw, ph = cfg.panorama_size
                pano = renderer.panorama(CameraPose(cam_xy[i, 0], cam_xy[i, 1], yaw_c[i],
                                                    z_m=cfg.camera_xyz_m[2]), width=pw, height=ph)
                writer.write(conns['panorama'], t_ns, m.serialize(m.image_compressed(
                    t_ns, 'camera_pano_frame', pano, quality=cfg.jpeg_quality)))
    except BaseException:
        writer.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    writer.close()
    info = {'city': asdict(world.config), 'drive': asdict(cfg),
            'camera': camera.to_dict(), 'topics': TOPICS, 'frames': {
                'map': 'ENU at the city datum', 'base_link': 'vehicle, on the ground',
                'camera_optical_frame': 'x right, y down, z forward',
                'camera_pano_frame': 'x forward (panorama centre column), z up'},
            'start_time_ns': T0_NS, 'duration_s': traj.duration_s,
            'distance_m': float(np.sum(np.linalg.norm(np.diff(traj.xy_m, axis=0), axis=1))),
            'gnss_reported_sigma_m': reported}
    (partial / 'ciper_drive.json').write_text(json.dumps(info, indent=2) + '\n')
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    staging.rmdir()
    return out

