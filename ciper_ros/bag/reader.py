"""One reader for every recording users bring: rosbag2 (mcap, sqlite3) and ROS 1 ``.bag``.

``rosbags.highlevel.AnyReader`` opens both; this module adds what every offline tool needs
on top of it, once:

* :func:`bag_paths`: what a path names (a rosbag2 folder, a ``.mcap`` / ``.db3`` file, a
  ROS 1 ``.bag`` file, or a folder holding ``.bag`` files), or None when it is no bag;
* :class:`BagTopics`: the topics to read (every one an option of the offline commands);
* :func:`drive_frames`: the recording fed through a
  :class:`~ciper_ros.runtime.pipeline.FramePipeline` in time order, exactly as the node is
  fed live (fixes up to the image stamp, CameraInfo up to the stamp plus its tolerance,
  odometry up to the stamp plus the interpolation gap, ``/tf_static`` first), yielding one
  :class:`~ciper_ros.metrics.frames.FrameRecord` per camera frame with its ground truth
  (``/ground_truth/pose``: PoseStamped, PoseWithCovarianceStamped or Odometry, base_link).

Any error reading the recording (a missing file, a truncated or corrupt mcap, an unknown
topic) is a :class:`~ciper_ros.util.errors.UserError` naming the bag.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import json
import os
from pathlib import Path

import numpy as np

from ciper_ros.util.errors import CorruptFileError, UserError

IMAGE_TOPICS = ('/camera_pano/image_raw/compressed', '/camera/image_raw/compressed',
                '/camera/image_raw')
DRIVE_INFO = 'ciper_drive.json'
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')


@dataclass(frozen=True)
class BagTopics:
    """Topics of a recording.

    ``image`` None: the first of IMAGE_TOPICS present; ``camera_info`` None:
    ``<image namespace>/camera_info``; ``gnss`` / ``odom`` None: ``/gnss/fix`` / ``/odom``
    when recorded. A topic given by name must be recorded; an empty string switches a stream
    off.
    """

    image: str | None = None
    camera_info: str | None = None
    gnss: str | None = None
    odom: str | None = None
    truth: str = '/ground_truth/pose'
    tf_static: str = '/tf_static'

    def resolve(self, recorded: set[str], where: str) -> BagTopics:
        """Fill the defaults from what ``recorded`` holds; unknown named topics are an error."""
        image = self.image or next((t for t in IMAGE_TOPICS if t in recorded), None)
        if image is None:
            raise UserError(f'no image topic in {where} (looked for {list(IMAGE_TOPICS)}; '
                            f'give --image-topic); topics: {sorted(recorded)}')
        info = self.camera_info
        if info is None:
            info = image.removesuffix('/compressed').rsplit('/', 1)[0] + '/camera_info'
        odom = self.odom if self.odom is not None else ('/odom' if '/odom' in recorded else '')
        gnss = self.gnss if self.gnss is not None else (
            '/gnss/fix' if '/gnss/fix' in recorded else '')
        named = {'image': image, 'gnss': self.gnss, 'camera_info': self.camera_info,
                 'odom': self.odom}
        missing = {k: t for k, t in named.items() if t and t not in recorded}
        if missing:
            raise UserError(f'{where} has no topic(s) {missing}; topics: {sorted(recorded)}')
        return BagTopics(image=image, camera_info=info, gnss=gnss, odom=odom,
                         truth=self.truth, tf_static=self.tf_static)


def bag_paths(path: str | os.PathLike) -> list[Path] | None:
    """Return the paths AnyReader takes for ``path``, or None when it is not a recording."""
    p = Path(path)
    if p.is_file():
        if p.suffix == '.bag':
            return [p]
        if p.suffix in ('.mcap', '.db3'):
            return [p.parent] if (p.parent / 'metadata.yaml').is_file() else [p]
        return None
    if p.is_dir():
        if (p / 'metadata.yaml').is_file():
            return [p]
        ros1 = sorted(p.glob('*.bag'))
        if ros1:
            return ros1
        if any(p.glob('*.mcap')) or any(p.glob('*.db3')):
            return [p]
    return None


def is_bag(path: str | os.PathLike) -> bool:
    return bag_paths(path) is not None


class Bag:
    """An open recording: ``with Bag(path) as bag: bag.messages(topics)``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        paths = bag_paths(self.path)
        if paths is None:
            if not self.path.exists():
                raise FileNotFoundError(f'no such bag: {self.path}')
            raise UserError(f'{self.path} is not a rosbag2 folder, mcap/db3 file or ROS 1 bag')
        from rosbags.highlevel import AnyReader

        from ciper_ros.rosmsg.build import typestore

        self._reader = AnyReader(paths, default_typestore=typestore())
        try:
            self._reader.open()
        except Exception as e:            # rosbags raises its own types for unreadable bags
            raise CorruptFileError(f'cannot read bag {self.path}: {e}') from None

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    @property
    def is_ros1(self) -> bool:
        return not self._reader.is2

    @property
    def topics(self) -> dict[str, str]:
        """Map topic -> message type ('pkg/msg/Name')."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def connections(self):
        return self._reader.connections

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    def raw_messages(self, topics=None) -> Iterator[tuple[object, int, bytes]]:
        """Yield (connection, bag time ns, raw bytes) in time order; errors name the bag."""
        conns = [c for c in self._reader.connections if topics is None or c.topic in topics]
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        n = 0
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as e:        # a truncated chunk, a bad record, a CRC mismatch
                raise CorruptFileError(f'bag {self.path} is corrupt after {n} messages: '
                                       f'{type(e).__name__}: {e}') from None
            n += 1
            yield item

    def deserialize(self, raw: bytes, msgtype: str):
        """Return a message object (rosbags) from raw bytes of either ROS version."""
        return self._reader.deserialize(raw, msgtype)

    def cdr(self, raw: bytes, msgtype: str) -> bytes:
        """Return ROS 2 CDR bytes of a message (ROS 1 ones are converted; Header drops seq)."""
        if self._reader.is2:
            return bytes(raw)
        from ciper_ros.rosmsg.build import typestore

        return bytes(typestore().ros1_to_cdr(raw, msgtype))

    def drive_info(self) -> dict | None:
        """Read ``ciper_drive.json`` beside the storage files (``ciper synth drive`` bags)."""
        base = self.path if self.path.is_dir() else self.path.parent
        f = base / DRIVE_INFO
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise CorruptFileError(f'{f} is not valid JSON: {e}') from None


def stamp_ns(msg, fallback_ns: int) -> int:
    """Return a message's header stamp in ns (the bag's receive time without one)."""
    st = getattr(getattr(msg, 'header', None), 'stamp', None)
    if st is None:
        return int(fallback_ns)
    return int(st.sec) * 1_000_000_000 + int(getattr(st, 'nanosec', getattr(st, 'nsec', 0)))


@dataclass
class _Stream:
    """Time-sorted (stamp_ns, value) pairs consumed up to a time."""

    items: list
    next: int = 0

    def until(self, t_ns: int) -> list:
        out = []
        while self.next < len(self.items) and self.items[self.next][0] <= t_ns:
            out.append(self.items[self.next])
            self.next += 1
        return out


@dataclass
class Recording:
    """What :func:`read_recording` loads: every stream but the images, and the image list."""

    path: Path
    topics: BagTopics
    images: list            # (stamp_ns, bag_t_ns, raw, msgtype)
    fixes: list             # (stamp_ns, NavSatFix)
    camera_infos: list      # (stamp_ns, CameraInfo)
    odometry: list          # (stamp_ns, x_m, y_m, yaw_rad)
    truth: np.ndarray       # (N, 4): stamp_ns, x_m, y_m, yaw_rad of base_link
    tf_edges: list
    drive_info: dict | None
    bag: Bag


def read_recording(path: str | os.PathLike, topics: BagTopics = BagTopics()) -> Recording:
    """Open ``path`` and load every stream the pipeline needs (images stay raw)."""
    from ciper_ros.rosmsg.convert import yaw_of
    from ciper_ros.runtime.mount import tf_edges

    bag = Bag(path)
    try:
        t = topics.resolve(set(bag.topics), str(bag.path))
        wanted = {x for x in (t.image, t.camera_info, t.gnss, t.odom, t.truth, t.tf_static) if x}
        images, fixes, infos, odom, truth, edges = [], [], [], [], [], []
        for conn, t_ns, raw in bag.raw_messages(wanted):
            if conn.topic == t.image:
                if conn.msgtype not in IMAGE_TYPES:
                    raise UserError(f'{t.image} in {bag.path} is {conn.msgtype}, not an image')
                try:
                    msg = bag.deserialize(raw, conn.msgtype)
                    images.append((stamp_ns(msg, t_ns), t_ns, raw, conn.msgtype,
                                   str(msg.header.frame_id)))
                except Exception as e:     # a malformed message: a bad frame, never fatal
                    images.append((t_ns, t_ns, None, f'bad image message: {e}', ''))
                continue
            try:
                msg = bag.deserialize(raw, conn.msgtype)
            except Exception:              # a malformed non-image message is skipped
                continue
            if conn.topic == t.gnss:
                fixes.append((stamp_ns(msg, t_ns), msg))
            elif conn.topic == t.camera_info:
                infos.append((stamp_ns(msg, t_ns), msg))
            elif conn.topic == t.odom:
                p = msg.pose.pose
                odom.append((stamp_ns(msg, t_ns), p.position.x, p.position.y,
                             yaw_of(p.orientation)))
            elif conn.topic == t.truth:
                p = msg.pose
                p = getattr(p, 'pose', p)            # Odometry / PoseWithCovarianceStamped
                truth.append((stamp_ns(msg, t_ns), p.position.x, p.position.y,
                              yaw_of(p.orientation)))
            elif conn.topic == t.tf_static:
                try:
                    edges += tf_edges(msg)
                except ValueError:
                    pass
        info = bag.drive_info()
    except BaseException:
        bag.close()
        raise
    for s in (fixes, infos, odom, truth):
        s.sort(key=lambda e: e[0])
    images.sort(key=lambda e: e[0])
    return Recording(path=bag.path, topics=t, images=images, fixes=fixes, camera_infos=infos,
                     odometry=odom, truth=np.array(truth, np.float64).reshape(-1, 4),
                     tf_edges=edges, drive_info=info, bag=bag)


def drive_frames(pipeline, rec: Recording, *,
                 datum_latlon_deg=None) -> Iterator[tuple[object, dict]]:
    """Feed ``rec`` through ``pipeline`` in time order: (FrameRecord, frame info) per image.

    ``datum_latlon_deg``: the datum of the truth's map frame (default: the drive's own from
    ``ciper_drive.json``, else the index's); truth is moved into the index's frame.
    Frame info: ``bag_t_ns``, ``frame_id``, ``msg`` (the deserialised image message).
    """
    from ciper_ros.runtime.pipeline import Frame

    cfg = pipeline.config
    fixes, infos = _Stream(rec.fixes), _Stream(rec.camera_infos)
    odom = _Stream(rec.odometry)
    pipeline.add_static_transforms(rec.tf_edges)
    truth_xy = truth_in_index(rec, pipeline.localizer.index.plane, datum_latlon_deg)
    for stamp, bag_t_ns, raw, msgtype, frame_id in rec.images:
        for t, msg in fixes.until(stamp):
            pipeline.add_fix(t, msg)
        for t, msg in infos.until(stamp + int(cfg.camera_info_tolerance_s * 1e9)):
            pipeline.add_camera_info(t, msg)
        for t, x, y, yaw in odom.until(stamp + int(cfg.odom_max_gap_s * 1e9)):
            pipeline.add_odometry(t, x, y, yaw)
        image, error, msg = None, '', None
        if raw is None:
            error = msgtype
        else:
            try:
                msg = rec.bag.deserialize(raw, msgtype)
                image = pipeline.decode(msg, msgtype)
            except Exception as e:       # MessageError or a malformed message: a bad frame
                error = f'bad image: {e}'
        record = pipeline.process(Frame(stamp_ns=stamp, image=image, frame_id=frame_id,
                                        error=error))
        attach_truth(record, truth_xy, mount=pipeline.tf_static.mount(frame_id))
        yield record, {'bag_t_ns': bag_t_ns, 'frame_id': frame_id, 'msg': msg,
                       'msgtype': msgtype}


def truth_in_index(rec: Recording, plane, datum_latlon_deg) -> np.ndarray:
    """Truth rows (stamp_ns, x, y, yaw) in the index's ENU frame."""
    from ciper_ros.geo.enu import LocalTangentPlane

    truth = rec.truth.copy()
    if not len(truth):
        return truth
    datum = datum_latlon_deg
    if datum is None and rec.drive_info is not None:
        datum = (rec.drive_info['city']['lat0_deg'], rec.drive_info['city']['lon0_deg'])
    if datum is not None:
        ll = LocalTangentPlane(*datum).latlon_from_xy_m(truth[:, 1:3])
        truth[:, 1:3] = plane.xy_m_from_latlon(ll)
    return truth


def attach_truth(record, truth_xy: np.ndarray, *, mount) -> None:
    """Set the record's truth (base_link and camera) from the nearest truth message."""
    from ciper_ros.runtime.mount import camera_from_base

    if not len(truth_xy):
        return
    j = int(np.abs(truth_xy[:, 0] - record.stamp_ns).argmin())
    _, x, y, yaw = truth_xy[j]
    record.truth_x_m, record.truth_y_m, record.truth_yaw_rad = float(x), float(y), float(yaw)
    cam_xy, cam_yaw = camera_from_base(np.array([x, y]), yaw, mount)
    record.truth_camera_xy_yaw = (float(cam_xy[0]), float(cam_xy[1]), float(cam_yaw))


def reference_records(rec: Recording, *, plane, fix_policy,
                      datum_latlon_deg=None) -> list:
    """Build records with the prior the node's rule picks and the truth, no estimate.

    For runs where the estimate comes from elsewhere (the live node of an online
    evaluation): the GNSS buffer is fed exactly as :func:`drive_frames` feeds it.
    """
    from ciper_ros.metrics.frames import FrameRecord
    from ciper_ros.runtime.gnss import FixBuffer
    from ciper_ros.runtime.mount import Mount
    from ciper_ros.runtime.pipeline import set_prior

    buffer, fixes = FixBuffer(fix_policy), _Stream(rec.fixes)
    truth_xy = truth_in_index(rec, plane, datum_latlon_deg)
    out = []
    for stamp, _, raw, msgtype, _ in rec.images:
        for t, msg in fixes.until(stamp):
            buffer.add(t, msg)
        r = FrameRecord(stamp_ns=stamp, name=str(stamp))
        prior, why, r.fix_age_s = buffer.prior_at(stamp)
        r.reason = why if prior is None else ''
        if raw is None:
            r.reason = msgtype
        if prior is not None:
            set_prior(r, prior, plane)
        attach_truth(r, truth_xy, mount=Mount())
        out.append(r)
    return out
