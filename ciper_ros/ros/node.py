"""``localize_node``: camera frames + GNSS in, metric base_link poses out (ARCHITECTURE.md 6).

Threads: the executor thread only stores messages (image slot, GNSS and odometry buffers,
static TF) and publishes diagnostics; one worker thread decodes and localizes. The image
slot holds one frame: a frame arriving while the worker is busy replaces the waiting one
(the newest frame wins, counted as dropped), so the node never builds a backlog.

Every output carries the image's capture stamp. Poses are base_link in ``map_frame`` (ENU
at the tile index's datum: ``ciper index info`` prints it). TF is published as
tf2_msgs/TFMessage directly (no tf2_ros in pip installs): map -> odom when odometry is
configured and available at the image stamp, else map -> ``debug_child_frame``.
"""

from __future__ import annotations

from collections import deque
import math
import sys
import threading
import time
import traceback

import numpy as np

from ciper_ros.ros.params import NodeParams, ParameterError
from ciper_ros.util.errors import CiperError

try:
    import rclpy
    from rclpy.node import Node
except ImportError as e:            # pragma: no cover - the venv and ROS installs have rclpy
    rclpy, Node, _RCLPY_ERROR = None, object, e

NODE_NAME = 'ciper_localizer'
TIME_JUMP_BACK_S = 1.0       # an image this much older than the last: clock went back
ODOM_GAP_S = 0.5            # odometry is interpolated across gaps up to this long
ODOM_TOLERANCE_S = 0.05      # else the nearest message, when this close to the image stamp
RATE_WINDOW_S = 5.0


class StartupError(CiperError, RuntimeError):
    """The node cannot start (missing model, index or map, wrong combination)."""


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class RateMeter:
    """Messages per second over the last few seconds (monotonic wall time)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._t: deque[float] = deque()
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        self._t.append(time.monotonic())

    def rate_hz(self) -> float:
        now = time.monotonic()
        while self._t and self._t[0] < now - self.window_s:
            self._t.popleft()
        return len(self._t) / self.window_s


class LocalizeNode(Node):
    def __init__(self, *, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        from rclpy.qos import (
            DurabilityPolicy,
            qos_profile_sensor_data,
            QoSProfile,
            ReliabilityPolicy,
        )

        self.params = p = self._read_parameters()
        self._build_pipeline(p)
        from ciper_ros.runtime.mount import Mount

        self.param_mount = Mount(p.camera_x_m, p.camera_y_m, p.camera_yaw_rad)
        self._lock = threading.Lock()
        self._cv = threading.Condition()
        self._slot = None
        self._stop = False
        self._tf_static: dict[str, tuple] = {}
        self._mounts: dict[str, object] = {}
        self._odom: deque = deque(maxlen=400)
        self._camera_info = None
        self._last_stamp: int | None = None
        self.rates = {k: RateMeter() for k in ('image', 'camera_info', 'gnss', 'odom')}
        self.counts = dict.fromkeys(('received', 'processed', 'dropped', 'localized',
                                     'rejected', 'bad_images', 'bad_fixes', 'bad_tf',
                                     'time_jumps'), 0)
        self.last = {'ok': False, 'reason': '', 'reason_stamp': '', 'output': None,
                     'fix_reason': '', 'error': ''}
        self._latency_ms: deque[float] = deque(maxlen=200)
        self._processing_ms: deque[float] = deque(maxlen=200)

        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, NavSatFix
        from tf2_msgs.msg import TFMessage

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_pose = self.create_publisher(PoseStamped, '~/pose', reliable)
        self.pub_pose_cov = self.create_publisher(PoseWithCovarianceStamped,
                                                  '~/pose_with_covariance', reliable)
        self.pub_fix = self.create_publisher(NavSatFix, '~/fix', reliable)
        self.pub_tf = self.create_publisher(TFMessage, '/tf', QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', reliable)

        image_qos = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                               durability=qos_profile_sensor_data.durability)
        sensor = qos_profile_sensor_data
        if p.compressed:
            self.image_topic = p.image_topic.rstrip('/') + '/compressed'
            self.image_type = 'sensor_msgs/msg/CompressedImage'
            self.create_subscription(CompressedImage, self.image_topic, self._on_image,
                                     image_qos)
        else:
            self.image_topic, self.image_type = p.image_topic, 'sensor_msgs/msg/Image'
            self.create_subscription(Image, self.image_topic, self._on_image, image_qos)
        self.create_subscription(CameraInfo, p.camera_info_topic, self._on_camera_info, sensor)
        self.create_subscription(NavSatFix, p.gnss_topic, self._on_fix, QoSProfile(
            depth=20, reliability=sensor.reliability))
        if p.odom_topic:
            from nav_msgs.msg import Odometry

            self.create_subscription(Odometry, p.odom_topic, self._on_odom, QoSProfile(
                depth=50, reliability=sensor.reliability))
        self.create_subscription(TFMessage, '/tf_static', self._on_tf_static, QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        # diagnostics on the steady clock: they keep coming while sim time is paused
        from rclpy.clock import Clock, ClockType

        self.create_timer(p.diagnostics_period_s, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._worker = threading.Thread(target=self._work, name='ciper_localize', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'localizing {self.image_topic} ({self.image_type}) with GNSS {p.gnss_topic} '
            f'on {len(self.pipeline.localizer.index.xy_m)} tiles ({p.backend} backend); '
            f'publishing ~/pose, ~/pose_with_covariance, ~/fix, /tf '
            f'({"on" if p.publish_tf else "off"}), /diagnostics')

    # ------------------------------------------------------------------ start-up
    def _read_parameters(self) -> NodeParams:
        from rcl_interfaces.msg import ParameterDescriptor

        defaults = NodeParams.defaults()
        overrides = getattr(self, '_parameter_overrides', {}) or {}
        unknown = sorted(set(overrides) - set(defaults) - {'use_sim_time'}
                         - {n for n in overrides if n.startswith('qos_overrides.')})
        if unknown:
            raise ParameterError(f'unknown parameter(s) {unknown}; known: {sorted(defaults)}')
        values = {}
        for name, default in defaults.items():
            # dynamic typing: NodeParams checks types itself and names the parameter
            param = self.declare_parameter(name, default,
                                           ParameterDescriptor(dynamic_typing=True))
            values[name] = param.value
        return NodeParams.from_dict(values)

    def _build_pipeline(self, p: NodeParams) -> None:
        from ciper_ros.maps import MapStoreError
        from ciper_ros.runtime.assemble import open_localizer
        from ciper_ros.runtime.gnss import FixBuffer
        from ciper_ros.runtime.index import TileIndexError
        from ciper_ros.runtime.pipeline import FramePipeline

        try:
            loc = open_localizer(**p.localizer_args())
        except (OSError, ValueError, TileIndexError, MapStoreError, ImportError,
                RuntimeError) as e:
            raise StartupError(str(e)) from None
        self.fixes = FixBuffer(p.fix_policy())
        self.pipeline = FramePipeline(localizer=loc)

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg) -> None:
        self.rates['image'].tick()
        with self._cv:
            self.counts['received'] += 1
            if self._slot is not None:
                self.counts['dropped'] += 1        # the waiting frame is stale: replace it
            self._slot = (msg, time.monotonic())
            self._cv.notify()

    def _on_camera_info(self, msg) -> None:
        self.rates['camera_info'].tick()
        self._camera_info = msg

    def _on_fix(self, msg) -> None:
        self.rates['gnss'].tick()
        why = self.fixes.add(stamp_ns(msg.header.stamp), msg)
        if why:
            self.counts['bad_fixes'] += 1
            self.last['fix_reason'] = why

    def _on_odom(self, msg) -> None:
        from ciper_ros.rosmsg.convert import yaw_of

        self.rates['odom'].tick()
        p = msg.pose.pose
        vals = (p.position.x, p.position.y, yaw_of(p.orientation))
        if not all(math.isfinite(v) for v in vals):
            return
        t = stamp_ns(msg.header.stamp)
        with self._lock:
            if self._odom and t < self._odom[-1][0] - TIME_JUMP_BACK_S * 1e9:
                self._odom.clear()
            self._odom.append((t, *vals))

    def _on_tf_static(self, msg) -> None:
        from ciper_ros.runtime.mount import tf_edges

        try:
            edges = tf_edges(msg)
        except ValueError as e:
            self.counts['bad_tf'] += 1
            self.last['error'] = f'/tf_static: {e}'
            return
        with self._lock:
            for parent, child, T in edges:
                self._tf_static[child] = (parent, child, T)
            self._mounts.clear()

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            with self._cv:
                while self._slot is None and not self._stop:
                    self._cv.wait(0.5)
                if self._stop:
                    return
                msg, t_recv = self._slot
                self._slot = None
            try:
                self._handle(msg, t_recv)
            except Exception as e:        # never let one frame kill the worker
                self._reject(None, f'internal error: {type(e).__name__}: {e}')
                self.get_logger().error(traceback.format_exc())

    def _reject(self, stamp: int | None, reason: str) -> None:
        self.counts['rejected'] += 1
        self.last['ok'] = False
        self.last['reason'] = reason
        self.last['reason_stamp'] = '' if stamp is None else f'{stamp * 1e-9:.3f}'

    def _handle(self, msg, t_recv: float) -> None:
        from ciper_ros.rosmsg.convert import MessageError

        self.counts['processed'] += 1
        stamp = stamp_ns(msg.header.stamp)
        if self._last_stamp is not None and stamp < self._last_stamp:
            back_s = (self._last_stamp - stamp) * 1e-9
            if back_s <= TIME_JUMP_BACK_S:
                self._reject(stamp, f'image stamp {back_s:.3f} s older than the previous '
                                    'frame (out of order)')
                return
            # the clock went back (bag looped, sim restarted): history is void
            self.fixes.clear()
            with self._lock:
                self._odom.clear()
            self.counts['time_jumps'] += 1
            self.get_logger().warn(f'time jumped back {back_s:.1f} s: GNSS and odometry '
                                   'buffers cleared')
        self._last_stamp = stamp
        try:
            rgb = self.pipeline.decode(msg, self.image_type)
        except MessageError as e:
            self.counts['bad_images'] += 1
            self._reject(stamp, f'bad image: {e}')
            return
        camera = None
        if self.pipeline.localizer.needs_camera(rgb):      # a forward camera for a panorama model
            camera, why = self._camera_for(rgb)
            if camera is None:
                self._reject(stamp, why)
                return
        prior, why, age = self.fixes.prior_at(stamp)
        out = self.pipeline.process(rgb, stamp, self._mount(str(msg.header.frame_id)), prior,
                                    prior_reason=why, fix_age_s=age, camera=camera)
        self.last['output'] = out
        if not out.ok:
            self._reject(stamp, out.reason)
            return
        self._publish(out, msg.header.stamp)
        self.counts['localized'] += 1
        self.last['ok'] = True
        self._processing_ms.append(1e3 * (time.monotonic() - t_recv))
        self._latency_ms.append(1e-6 * (self.get_clock().now().nanoseconds - stamp))

    def _camera_for(self, rgb: np.ndarray):
        """(PinholeCamera, '') from the latest CameraInfo matching the image, or (None, why)."""
        from ciper_ros.rosmsg.convert import camera_info_to_camera, MessageError

        info = self._camera_info
        if info is None:
            return None, (f'a {rgb.shape[1]}x{rgb.shape[0]} forward camera image needs its '
                          f'intrinsics: no CameraInfo on {self.params.camera_info_topic}')
        try:
            cam = camera_info_to_camera(info)
        except MessageError as e:
            return None, str(e)
        if (cam.width, cam.height) != (rgb.shape[1], rgb.shape[0]):
            return None, (f'CameraInfo is {cam.width}x{cam.height}, the image '
                          f'{rgb.shape[1]}x{rgb.shape[0]}')
        return cam, ''

    def _mount(self, camera_frame: str):
        from ciper_ros.runtime.mount import mount_or_default

        with self._lock:
            if camera_frame in self._mounts:
                return self._mounts[camera_frame]
            edges = list(self._tf_static.values())
        mount, why = mount_or_default(edges, base_frame=self.params.base_frame,
                                      camera_frame=camera_frame, default=self.param_mount)
        if why:
            self.last['error'] = why
        with self._lock:
            self._mounts[camera_frame] = mount
        return mount

    def _odom_at(self, stamp: int):
        """Return the odometry pose (t, x, y, yaw) at ``stamp``, or None.

        Interpolated between the two messages around it (at most ODOM_GAP_S apart), else the
        nearest message within ODOM_TOLERANCE_S.
        """
        with self._lock:
            odom = list(self._odom)
        before = [o for o in odom if o[0] <= stamp]
        after = [o for o in odom if o[0] > stamp]
        if before and after:
            a, b = max(before, key=lambda o: o[0]), min(after, key=lambda o: o[0])
            if (b[0] - a[0]) * 1e-9 <= ODOM_GAP_S:
                w = (stamp - a[0]) / (b[0] - a[0])
                dyaw = math.remainder(b[3] - a[3], 2 * math.pi)
                return (stamp, a[1] + w * (b[1] - a[1]), a[2] + w * (b[2] - a[2]),
                        a[3] + w * dyaw)
        near = min(odom, key=lambda o: abs(o[0] - stamp), default=None)
        if near is not None and abs(near[0] - stamp) <= ODOM_TOLERANCE_S * 1e9:
            return near
        return None

    # ------------------------------------------------------------------ outputs
    def _publish(self, out, stamp) -> None:
        from geometry_msgs.msg import (
            PoseStamped,
            PoseWithCovarianceStamped,
            TransformStamped,
        )
        from sensor_msgs.msg import NavSatFix
        from tf2_msgs.msg import TFMessage

        from ciper_ros.rosmsg.convert import (
            fill_fix_estimate,
            fill_pose,
            fill_transform,
            map_to_odom,
            pose_covariance_6x6,
        )

        p = self.params
        x, y = float(out.xy_m[0]), float(out.xy_m[1])
        ps = PoseStamped()
        ps.header.stamp, ps.header.frame_id = stamp, p.map_frame
        fill_pose(ps.pose, x, y, out.yaw_rad)
        pc = PoseWithCovarianceStamped()
        pc.header = ps.header
        pc.pose.pose = ps.pose
        pc.pose.covariance = pose_covariance_6x6(out.covariance)
        fix = fill_fix_estimate(NavSatFix(), out.lat_deg, out.lon_deg, out.covariance)
        fix.header.stamp, fix.header.frame_id = stamp, p.base_frame
        self.pub_pose.publish(ps)
        self.pub_pose_cov.publish(pc)
        self.pub_fix.publish(fix)
        if not p.publish_tf:
            return
        tf = TransformStamped()
        tf.header.stamp, tf.header.frame_id = stamp, p.map_frame
        odom = self._odom_at(out.stamp_ns) if p.odom_topic else None
        if odom is None:                      # debug frame: where we think base_link is
            tf.child_frame_id = p.debug_child_frame
            fill_transform(tf, x, y, out.yaw_rad)
        else:
            tf.child_frame_id = p.odom_frame
            fill_transform(tf, *map_to_odom(x, y, out.yaw_rad, odom[1:]))
        self.pub_tf.publish(TFMessage(transforms=[tf]))

    def diagnostic_values(self) -> dict:
        """Everything the diagnostics message reports, as plain values."""
        out = self.last['output']
        vals = dict(self.counts)
        vals.update({f'{k}_rate_hz': round(m.rate_hz(), 2) for k, m in self.rates.items()})
        vals['last_rejection'] = self.last['reason']
        vals['last_rejection_stamp'] = self.last['reason_stamp']
        vals['last_gnss_rejection'] = self.last['fix_reason']
        vals['last_error'] = self.last['error']
        newest = self.fixes.newest_ns()
        now = self.get_clock().now().nanoseconds
        vals['gnss_age_s'] = round((now - newest) * 1e-9, 3) if newest else math.nan
        vals['gnss_buffered'] = len(self.fixes)
        with self._lock:
            vals['odom_buffered'] = len(self._odom)
        if out is not None:
            vals['last_stamp'] = f'{out.stamp_ns * 1e-9:.3f}'
            vals['last_fix_age_s'] = out.fix_age_s
            vals['candidates'] = out.candidates
            vals['score'] = out.score
            c = out.covariance
            if np.all(np.isfinite(c)):
                vals['sigma_x_m'] = math.sqrt(c[0, 0])
                vals['sigma_y_m'] = math.sqrt(c[1, 1])
                vals['sigma_yaw_deg'] = math.degrees(math.sqrt(c[2, 2]))
                vals['covariance_xy_yaw'] = ' '.join(f'{v:.4g}' for v in c.ravel())
            for stage, ms in out.timings_ms.items():
                vals[f'time_{stage}_ms'] = ms
        for name, q in (('latency', self._latency_ms), ('processing', self._processing_ms)):
            if q:
                vals[f'{name}_median_ms'] = float(np.median(q))
                vals[f'{name}_p95_ms'] = float(np.percentile(q, 95))
        cam = self._camera_info
        if cam is not None and cam.k[0] > 0:
            vals['camera_hfov_deg'] = math.degrees(2 * math.atan(cam.width / (2 * cam.k[0])))
        with self._lock:
            mounts = dict(self._mounts)
            vals['tf_static_edges'] = len(self._tf_static)
        vals['camera_mount'] = '; '.join(f'{f or "?"}: {m.source} ({m.x_m:.2f}, {m.y_m:.2f} m, '
                                         f'{math.degrees(m.yaw_rad):.1f} deg)'
                                         for f, m in mounts.items())
        return vals

    def _publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        vals = self.diagnostic_values()
        st = DiagnosticStatus()
        st.name = f'{self.get_name()}: localization'
        st.hardware_id = 'ciper_ros'
        if not self._worker.is_alive():
            st.level, st.message = DiagnosticStatus.ERROR, 'localization worker stopped'
        elif self.counts['received'] == 0:
            st.level, st.message = DiagnosticStatus.WARN, f'no images on {self.image_topic}'
        elif self.last['ok']:
            st.level, st.message = DiagnosticStatus.OK, 'localized'
        else:
            st.level = DiagnosticStatus.WARN
            st.message = f'not localized: {self.last["reason"] or "waiting for a frame"}'
        st.values = [KeyValue(key=k, value=_fmt(v)) for k, v in vals.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self.pub_diag.publish(arr)

    def close(self) -> None:
        """Stop the worker (the frame in progress finishes first)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._worker.join(timeout=30.0)


def _fmt(v) -> str:
    if isinstance(v, float):
        return 'nan' if not math.isfinite(v) else f'{v:.4g}'
    return str(v)


def main(argv: list[str] | None = None) -> int:
    if rclpy is None:
        print(f'localize_node needs rclpy (ROS 2 or `make venv`): {_RCLPY_ERROR}',
              file=sys.stderr)
        return 1
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=argv)           # SIGINT and SIGTERM end spin() cleanly
    try:
        node = LocalizeNode()
    except (ParameterError, StartupError) as e:
        print(f'localize_node: {e}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if rclpy.ok():
            node.get_logger().info('shutting down')
        else:                        # a signal already shut the context (and /rosout) down
            print(f'[{node.get_name()}] shutting down', file=sys.stderr)
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
