"""Localize a sequence of frames: an image folder or a rosbag2 recording (``ciper localize``).

Frames come from a folder (images sorted by name, one prior for all, or none) or a bag
(compressed or raw images; the prior of each frame is chosen from the bag's GNSS fixes by
the node's own rule, :mod:`ciper_ros.runtime.gnss`). When the bag has ground truth
(``/ground_truth/pose``), each row also gets the error of the localized camera position
against it (the truth is base_link: the camera offset comes from ``ciper_drive.json``).
Results are written atomically as CSV or JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from ciper_ros.rosmsg.convert import to_rgb, yaw_of
from ciper_ros.runtime.gnss import FixBuffer, FixPolicy
from ciper_ros.runtime.localizer import Localizer, Prior
from ciper_ros.util.atomic import atomic_write_text

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')
IMAGE_TOPICS = ('/camera_pano/image_raw/compressed', '/camera/image_raw/compressed',
                '/camera/image_raw')
GNSS_TOPIC = '/gnss/fix'
TF_STATIC_TOPIC = '/tf_static'
TRUTH_TOPIC = '/ground_truth/pose'


def folder_frames(folder: Path):
    from ciper_ros.data.common import read_image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {folder}')
    for f in files:
        try:
            yield {'name': f.name, 't_ns': None, 'image': read_image(f)}
        except ValueError as e:
            yield {'name': f.name, 't_ns': None, 'image': None, 'error': str(e)}


def bag_frames(bag: Path, image_topic: str | None = None, *,
               policy: FixPolicy | None = None, truth_topic: str = TRUTH_TOPIC,
               decode: bool = True):
    """Frames of a rosbag2 with their GNSS priors and ground truth (when recorded).

    Each frame: ``name``, ``t_ns``, ``image`` (RGB or None with ``error``), ``frame_id``,
    ``prior`` (or None with ``prior_reason``, chosen by :class:`~ciper_ros.runtime.gnss.FixBuffer`
    exactly as the node does), ``truth_xy_yaw`` (base_link in the drive's ENU frame),
    ``drive_info`` (``ciper_drive.json``) and ``tf_edges`` (the bag's /tf_static).
    ``truth_topic``: PoseStamped, PoseWithCovarianceStamped or Odometry. With ``decode``
    False, ``image`` is the deserialised message (reference data for online runs).
    """
    from rosbags.rosbag2 import Reader

    from ciper_ros.rosmsg import build as msgs
    from ciper_ros.runtime.mount import tf_edges

    fixes, truth, images, edges, infos = [], [], [], [], []
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as e:           # rosbags raises its own types for unreadable bags
        raise ValueError(f'cannot read bag {bag}: {e}') from None
    try:
        topics = {c.topic for c in reader.connections}
        topic = image_topic or next((t for t in IMAGE_TOPICS if t in topics), None)
        if topic is None or topic not in topics:
            raise ValueError(f'no image topic in {bag} (looked for {image_topic or IMAGE_TOPICS});'
                             f' topics: {sorted(topics)}')
        info_topic = topic.removesuffix('/compressed').rsplit('/', 1)[0] + '/camera_info'
        for conn, t_ns, raw in reader.messages():
            if conn.topic == GNSS_TOPIC:
                fix = msgs.deserialize(raw, conn.msgtype)
                fixes.append((_stamp_ns(fix, t_ns), fix))
            elif conn.topic == truth_topic:
                p = msgs.deserialize(raw, conn.msgtype).pose
                p = getattr(p, 'pose', p)            # Odometry / PoseWithCovarianceStamped
                truth.append((t_ns, p.position.x, p.position.y, yaw_of(p.orientation)))
            elif conn.topic == TF_STATIC_TOPIC:
                edges += tf_edges(msgs.deserialize(raw, conn.msgtype))
            elif conn.topic == topic:
                images.append((t_ns, raw, conn.msgtype))
            elif conn.topic == info_topic and not infos:
                infos.append(msgs.deserialize(raw, conn.msgtype))
    finally:
        reader.close()
    info_file = bag / 'ciper_drive.json' if bag.is_dir() else None
    info = json.loads(info_file.read_text()) if info_file and info_file.is_file() else None
    camera = None           # intrinsics of a forward camera (for a panorama model)
    if infos:
        from ciper_ros.rosmsg.convert import camera_info_to_camera, MessageError

        try:
            camera = camera_info_to_camera(infos[0])
        except MessageError:
            camera = None
    buffer = FixBuffer(policy or FixPolicy())
    fixes.sort(key=lambda f: f[0])
    next_fix = 0            # fixes enter the buffer in time order, as a live node gets them
    truth_t = np.array([t[0] for t in truth]) if truth else np.zeros(0)
    for t_ns, raw, msgtype in images:
        frame = {'name': str(t_ns), 't_ns': t_ns, 'bag_t_ns': t_ns, 'image': None, 'frame_id': '',
                 'topic': topic, 'drive_info': info, 'tf_edges': edges, 'camera': camera}
        try:
            msg = msgs.deserialize(raw, msgtype)
            frame['t_ns'] = _stamp_ns(msg, t_ns)
            frame['frame_id'] = str(msg.header.frame_id)
            frame['image'] = to_rgb(msg, msgtype) if decode else msg
        except Exception as e:      # a malformed message: recorded, never fatal
            frame['error'] = f'bad image message: {e}'
        while next_fix < len(fixes) and fixes[next_fix][0] <= frame['t_ns']:
            buffer.add(*fixes[next_fix])
            next_fix += 1
        frame['prior'], frame['prior_reason'], frame['fix_age_s'] = buffer.prior_at(frame['t_ns'])
        if len(truth_t):
            j = int(np.abs(truth_t - frame['t_ns']).argmin())
            frame['truth_xy_yaw'] = truth[j][1:]
        yield frame


def _stamp_ns(msg, fallback_ns: int) -> int:
    """Return a message's header stamp in ns (the bag's receive time without one)."""
    st = getattr(getattr(msg, 'header', None), 'stamp', None)
    if st is None:
        return int(fallback_ns)
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


def _truth_camera_latlon(frame: dict, info: dict | None):
    """Ground-truth camera position (lat, lon) from base_link truth and the drive's datum."""
    if info is None or 'truth_xy_yaw' not in frame:
        return None
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.runtime.mount import camera_from_base, Mount

    x, y, yaw = frame['truth_xy_yaw']
    fwd, left = info['drive']['camera_xyz_m'][:2]
    cam_xy, _ = camera_from_base(np.array([x, y]), yaw, Mount(fwd, left, 0.0))
    plane = LocalTangentPlane(info['city']['lat0_deg'], info['city']['lon0_deg'])
    return plane.latlon_from_xy_m(cam_xy[None])[0], yaw


COLUMNS = ('name', 't_ns', 'ok', 'reason', 'lat_deg', 'lon_deg', 'x_m', 'y_m', 'yaw_rad',
           'sigma_x_m', 'sigma_y_m', 'sigma_yaw_rad', 'score', 'tile_id', 'total_ms',
           'prior_sigma_m', 'prior_error_m', 'error_m', 'yaw_error_deg')


def localize_frames(localizer: Localizer, frames, *, prior: Prior | None = None,
                    use_prior: bool = True, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    rows = []
    plane = localizer.index.plane
    for fr in tqdm(frames, desc='localize', unit='frame', disable=not progress):
        row = dict.fromkeys(COLUMNS, '')
        row.update(name=fr['name'], t_ns=fr['t_ns'] if fr['t_ns'] is not None else '')
        p = (fr.get('prior') or prior) if use_prior else None
        if p is not None:
            row['prior_sigma_m'] = p.sigma_m
        if fr.get('image') is None:
            row.update(ok=False, reason=fr.get('error', 'no image'))
            rows.append(row)
            continue
        if use_prior and p is None:
            row.update(ok=False, reason=fr.get('prior_reason') or 'no prior')
            rows.append(row)
            continue
        try:
            res = localizer.localize(fr['image'], p, camera=fr.get('camera'))
        except ValueError as e:
            row.update(ok=False, reason=str(e))
            rows.append(row)
            continue
        cov = np.asarray(res.covariance)
        row.update(ok=res.ok, reason=res.reason, lat_deg=res.lat_deg, lon_deg=res.lon_deg,
                   x_m=float(res.xy_m[0]), y_m=float(res.xy_m[1]), yaw_rad=res.yaw_rad,
                   sigma_x_m=math.sqrt(max(cov[0, 0], 0)), sigma_y_m=math.sqrt(max(cov[1, 1], 0)),
                   sigma_yaw_rad=math.sqrt(max(cov[2, 2], 0)), score=res.score,
                   tile_id=res.tile_id, total_ms=res.timings_ms.get('total', ''))
        truth = _truth_camera_latlon(fr, fr.get('drive_info'))
        if truth is not None and math.isfinite(res.lat_deg):
            (tlat, tlon), tyaw = truth
            txy = plane.xy_m_from_latlon(np.array([[tlat, tlon]]))[0]
            row['error_m'] = float(np.linalg.norm(res.xy_m - txy))
            row['yaw_error_deg'] = abs(math.degrees(math.remainder(res.yaw_rad - tyaw,
                                                                   2 * math.pi)))
            if p is not None:
                pxy = plane.xy_m_from_latlon(np.array([[p.lat_deg, p.lon_deg]]))[0]
                row['prior_error_m'] = float(np.linalg.norm(pxy - txy))
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if r['ok'] is True]
    out = {'frames': len(rows), 'localized': len(ok),
           'rejected': sum(1 for r in rows if r['ok'] is False)}
    for key in ('error_m', 'prior_error_m', 'yaw_error_deg', 'total_ms'):
        vals = [float(r[key]) for r in ok if r[key] != '']
        if vals:
            out[f'{key}_median'] = float(np.median(vals))
    return out


def write_rows(rows: list[dict], path: str | os.PathLike) -> None:
    p = Path(path)
    if p.suffix.lower() == '.json':
        atomic_write_text(p, json.dumps({'summary': summary(rows), 'frames': rows},
                                        indent=1) + '\n')
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(p, buf.getvalue())


def calibration_frames(frames):
    """Yield bag frames with ground truth in the form ``calibrate_covariance`` takes.

    Bags written by ``ciper synth drive``: their ``ciper_drive.json`` gives the datum and
    the camera offset.
    """
    for fr in frames:
        truth = _truth_camera_latlon(fr, fr.get('drive_info'))
        if fr.get('image') is None or truth is None:
            continue
        (lat, lon), yaw = truth
        yield {'image': fr['image'], 'prior': fr.get('prior'), 'truth_latlon_deg': (lat, lon),
               'truth_yaw_rad': yaw, 'camera': fr.get('camera')}
