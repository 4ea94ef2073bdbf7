"""Write a simulated drive (:mod:`ciper_ros.synth.recording`) as a rosbag2 (mcap or sqlite3).

Standard topics (ARCHITECTURE.md 5), the static camera mounts on ``/tf_static`` and a
``ciper_drive.json`` beside the storage file: datum, camera, sensor settings.
"""

from __future__ import annotations

from dataclasses import asdict
import json
import math
import os
from pathlib import Path
import shutil

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

from ciper_ros.rosmsg import build as m
from ciper_ros.synth.recording import DriveConfig, Q_BASE_OPTICAL, simulate_drive, T0_NS
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
DRIVE_INFO = 'ciper_drive.json'


def rig_topic(name: str, *, info: bool = False) -> str:
    """Give a rig camera's topic: ``/rig/<name>/image_raw/compressed`` or camera_info."""
    return f'/rig/{name}/camera_info' if info else f'/rig/{name}/image_raw/compressed'


def rig_frame(name: str) -> str:
    return f'rig_{name}_link'


def _qos(durability: QosDurability, reliability: QosReliability, depth: int = 10) -> Qos:
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth, reliability=reliability,
               durability=durability, deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


def _ns(t_s: float) -> int:
    return T0_NS + int(round(t_s * 1e9))


def write_drive_bag(world: World, out: str | os.PathLike, cfg: DriveConfig, *,
                    overwrite: bool = False, progress: bool = True) -> Path:
    """Simulate a drive in ``world`` and write it as a rosbag2 folder (atomically)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f'{out} exists; pass overwrite=True to replace it')
    # rosbag2 names its storage file after the folder: build in <out>.partial/<name>/ and
    # move the finished folder into place
    staging = out.with_name(out.name + '.partial')
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    partial = staging / out.name
    rec = simulate_drive(world, cfg)
    storage = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[cfg.storage]
    ts = m.typestore()
    sensor = _qos(QosDurability.VOLATILE, QosReliability.BEST_EFFORT, 5)
    reliable = _qos(QosDurability.VOLATILE, QosReliability.RELIABLE, 10)
    latched = _qos(QosDurability.TRANSIENT_LOCAL, QosReliability.RELIABLE, 1)

    writer = Writer(partial, version=9, storage_plugin=storage)
    writer.open()
    try:
        conns = {}

        def conn(key, typename, qos):
            conns[key] = writer.add_connection(TOPICS[key], typename, typestore=ts,
                                               offered_qos_profiles=[qos])
        conn('tf_static', m.TF_MESSAGE, latched)
        if cfg.raw_images:
            conn('image', m.IMAGE, sensor)
        conn('compressed', m.COMPRESSED_IMAGE, sensor)
        conn('camera_info', m.CAMERA_INFO, reliable)
        if cfg.panorama:
            conn('panorama', m.COMPRESSED_IMAGE, sensor)
        rig = rec.rig_cameras()
        for r in rig:
            for key, typename, qos in ((f'rig/{r.name}', m.COMPRESSED_IMAGE, sensor),
                                       (f'rig/{r.name}/info', m.CAMERA_INFO, reliable)):
                conns[key] = writer.add_connection(
                    rig_topic(r.name, info=key.endswith('/info')), typename, typestore=ts,
                    offered_qos_profiles=[qos])
        conn('gnss', m.NAVSATFIX, sensor)
        conn('odom', m.ODOMETRY, reliable)
        conn('truth', m.POSE_STAMPED, reliable)

        # the non-camera streams, in time order
        mounts = [(_ns(0.0), 'base_link', 'camera_optical_frame', cfg.camera_xyz_m,
                   Q_BASE_OPTICAL)]
        if cfg.panorama:        # the panorama's centre column looks along base_link +x
            mounts.append((_ns(0.0), 'base_link', 'camera_pano_frame', cfg.camera_xyz_m,
                           (0.0, 0.0, 0.0, 1.0)))
        for r in rig:           # non-optical camera frames: each looks along its +x
            mounts.append((_ns(0.0), 'base_link', rig_frame(r.name),
                           (r.x_m, r.y_m, cfg.camera_xyz_m[2]),
                           (0.0, 0.0, math.sin(r.yaw_rad / 2), math.cos(r.yaw_rad / 2))))
        events = [(_ns(0.0), 'tf_static', m.tf_message(mounts))]
        for t, lat, lon, alt, sigma in rec.fixes:
            if math.isfinite(lat):
                msg = m.navsatfix(_ns(t), 'gnss_link', lat, lon, alt, status=0,
                                  sigma_m=float(sigma))
            else:
                msg = m.navsatfix(_ns(t), 'gnss_link', math.nan, math.nan, math.nan,
                                  status=-1, sigma_m=None)
            events.append((_ns(t), 'gnss', msg))
        for t, x, y, yaw, v, rate in rec.odom:
            events.append((_ns(t), 'odom', m.odometry(_ns(t), x, y, yaw, v, rate)))
        for t, x, y, yaw in rec.truth:
            events.append((_ns(t), 'truth', m.pose_stamped(_ns(t), 'map', x, y, 0.0, yaw)))
        events.sort(key=lambda e: e[0])
        for t_ns, key, msg in events:
            writer.write(conns[key], t_ns, m.serialize(msg))

        # camera frames: rendered and written in order after the other streams (rosbag2
        # readers order by timestamp, not by write order)
        for i in tqdm(range(len(rec.camera_t_s)), desc='camera frames', unit='frame',
                      disable=None if progress else True, leave=False):
            t_ns = _ns(rec.camera_t_s[i])
            rgb, pano = rec.render(i)
            if cfg.raw_images:
                writer.write(conns['image'], t_ns,
                             m.serialize(m.image_raw(t_ns, 'camera_optical_frame', rgb)))
            writer.write(conns['compressed'], t_ns, m.serialize(m.image_compressed(
                t_ns, 'camera_optical_frame', rgb, quality=cfg.jpeg_quality)))
            writer.write(conns['camera_info'], t_ns,
                         m.serialize(m.camera_info(t_ns, 'camera_optical_frame', rec.camera)))
            if pano is not None:
                writer.write(conns['panorama'], t_ns, m.serialize(m.image_compressed(
                    t_ns, 'camera_pano_frame', pano, quality=cfg.jpeg_quality)))
            for r, img in zip(rig, rec.render_rig(i) if rig else (), strict=True):
                fid = rig_frame(r.name)
                writer.write(conns[f'rig/{r.name}'], t_ns, m.serialize(m.image_compressed(
                    t_ns, fid, img, quality=cfg.jpeg_quality)))
                writer.write(conns[f'rig/{r.name}/info'], t_ns,
                             m.serialize(m.camera_info(t_ns, fid, r.camera)))
    except BaseException:
        writer.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    writer.close()
    info = {'city': asdict(world.config), 'drive': asdict(cfg),
            'camera': rec.camera.to_dict(), 'topics': TOPICS, 'frames': {
                'map': 'ENU at the city datum', 'base_link': 'vehicle, on the ground',
                'camera_optical_frame': 'x right, y down, z forward',
                'camera_pano_frame': 'x forward (panorama centre column), z up',
                **{rig_frame(r.name): f'rig camera {r.name}: x along its optical axis, z up'
                   for r in rig}},
            'rig': {'preset': cfg.rig, 'image_topics': [rig_topic(r.name) for r in rig]},
            'start_time_ns': T0_NS, 'duration_s': rec.trajectory.duration_s,
            'distance_m': rec.distance_m, 'gnss_reported_sigma_m': cfg.gnss.nominal_sigma_m}
    (partial / DRIVE_INFO).write_text(json.dumps(info, indent=2) + '\n')
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    staging.rmdir()
    return out
