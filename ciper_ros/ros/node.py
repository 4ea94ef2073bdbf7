"""``localize_node``: camera frames + GNSS in, metric base_link poses out (ARCHITECTURE.md 6).

The node's wiring: parameters (declared from :mod:`ciper_ros.ros.params`, read-only unless
they may change at run time), subscriptions, the worker, shutdown. Outputs are in
:mod:`ciper_ros.ros.outputs`, /diagnostics in :mod:`ciper_ros.ros.diagnostics`.

Threads: the executor thread only stores messages (image slot; GNSS, CameraInfo, odometry
and static TF go into the pipeline's buffers) and publishes diagnostics and TF; one worker
thread decodes and runs the frame through :class:`~ciper_ros.runtime.pipeline.
FramePipeline`, the per-frame path every offline tool runs too. The
image slot holds one frame: a frame arriving while the worker is busy replaces the waiting
one (the newest frame wins, counted as dropped), so the node never builds a backlog.

Start-up runs one inference on a dummy frame through the localizer before subscribing, so
the first real frames do not wait for lazy initialisation (a cold first frame took 3.5 s
and 40 frames were dropped behind it). SIGINT / SIGTERM: no new frames are taken, the one
in progress (and the one waiting) finish and are published, then the node shuts down.

Every output carries the image's capture stamp. Poses are base_link in ``map_frame`` (ENU
at the tile index's datum: ``ciper index info`` prints it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, replace
import math
import signal
import sys
import threading
import time
import traceback

import numpy as np

from ciper_ros.ros.diagnostics import RateMeter
from ciper_ros.ros.params import (
    check_ros_args,
    describe,
    NodeParams,
    parameter_sources,
    ParameterError,
)
from ciper_ros.util.errors import CiperError

try:
    import rclpy
    from rclpy.node import Node
except ImportError as e:            # pragma: no cover - the venv and ROS installs have rclpy
    rclpy, Node, _RCLPY_ERROR = None, object, e

NODE_NAME = 'ciper_localizer'
SHUTDOWN_TIMEOUT_S = 30.0    # for the frame in progress to finish at shutdown
FLUSH_TIMEOUT_S = 2.0        # for subscribers to acknowledge the last outputs


class StartupError(CiperError, RuntimeError):
    """The node cannot start (missing model, index or map, wrong combination)."""


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class LocalizeNode(Node):
    def __init__(self, *, node_name: str = NODE_NAME, argv: list[str] | None = None,
                 **kwargs) -> None:
        """Start the node (``argv``: the command line, to tell own from shared parameters)."""
        super().__init__(node_name, **kwargs)
        from rclpy.qos import (
            DurabilityPolicy,
            qos_profile_sensor_data,
            QoSProfile,
            ReliabilityPolicy,
        )

        from ciper_ros.ros.debug import DebugOutputs
        from ciper_ros.ros.diagnostics import Diagnostics
        from ciper_ros.ros.outputs import Outputs

        self.params = p = self._read_parameters(sys.argv if argv is None else argv)
        self._build_pipeline(p)
        self._cv = threading.Condition()
        self._info_cv = threading.Condition()     # a CameraInfo arrived (a frame may wait)
        self._slot = None
        self._stop = False
        self.rates = {k: RateMeter() for k in ('image', 'camera_info', 'gnss', 'odom')}
        self.counts = dict.fromkeys(('received', 'processed', 'dropped', 'localized',
                                     'rejected', 'bad_images', 'bad_fixes', 'bad_tf',
                                     'time_jumps'), 0)
        self.last = {'ok': False, 'reason': '', 'reason_stamp': '', 'output': None,
                     'fix_reason': '', 'error': ''}
        self.seen: dict[str, float | None] = dict.fromkeys(('image', 'gnss_fix', 'pose'))
        self._latency_ms: deque[float] = deque(maxlen=200)
        self._processing_ms: deque[float] = deque(maxlen=200)
        # before any subscription: the first real frame must not pay for lazy initialisation
        self.warmup_ms = self._warm_up()

        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, NavSatFix
        from tf2_msgs.msg import TFMessage

        self.outputs = Outputs(self)
        self.debug = DebugOutputs(self)
        self._worker = threading.Thread(target=self._work, name='ciper_localize', daemon=True)
        self.diagnostics = Diagnostics(self)
        image_qos = QoSProfile(depth=1, reliability=qos_profile_sensor_data.reliability,
                               durability=qos_profile_sensor_data.durability)
        sensor = qos_profile_sensor_data
        self.image_type = ('sensor_msgs/msg/CompressedImage' if p.compressed
                           else 'sensor_msgs/msg/Image')
        image_cls = CompressedImage if p.compressed else Image
        rig = p.rig_topics()
        self.rig_sync = self.rig_infos = None
        if rig:                 # a camera rig: one frame of every camera, matched by stamp
            from ciper_ros.runtime.sensors import CameraInfoBuffer
            from ciper_ros.runtime.sync import StampSync

            self.rig_sync = StampSync(cameras=len(rig),
                                      tolerance_ns=int(p.rig_sync_tolerance_s * 1e9))
            self.rig_infos = [CameraInfoBuffer(tolerance_s=p.camera_info_tolerance_s)
                              for _ in rig]
            topics = []
            for i, (image_topic, info_topic) in enumerate(rig):
                topic = image_topic.rstrip('/') + '/compressed' if p.compressed else \
                    image_topic
                topics.append(topic)
                self.create_subscription(image_cls, topic,
                                         lambda msg, i=i: self._on_rig_image(i, msg),
                                         QoSProfile(depth=5, reliability=image_qos.reliability,
                                                    durability=image_qos.durability))
                self.create_subscription(CameraInfo, info_topic,
                                         lambda msg, i=i: self._on_rig_camera_info(i, msg),
                                         sensor)
            self.image_topic = ', '.join(topics)
        else:
            self.image_topic = p.image_topic.rstrip('/') + '/compressed' if p.compressed \
                else p.image_topic
            self.create_subscription(image_cls, self.image_topic, self._on_image, image_qos)
            self.create_subscription(CameraInfo, p.camera_info_topic, self._on_camera_info,
                                     sensor)
        self.create_subscription(NavSatFix, p.gnss_topic, self._on_fix, QoSProfile(
            depth=20, reliability=sensor.reliability))
        if p.odom_topic:
            from nav_msgs.msg import Odometry

            self.create_subscription(Odometry, p.odom_topic, self._on_odom, QoSProfile(
                depth=50, reliability=sensor.reliability))
        self.create_subscription(TFMessage, '/tf_static', self._on_tf_static, QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from std_srvs.srv import Trigger

        # as RViz's "2D Pose Estimate" sends it (and AMCL reads it): relative, so namespaced
        self.create_subscription(PoseWithCovarianceStamped, 'initialpose',
                                 self._on_initial_pose, 10)
        self.create_service(Trigger, '~/relocalize', self._on_relocalize)
        self._worker.start()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        track = (f'tracked over {p.odom_topic} ({p.tracker_particles} particles) at '
                 'odometry rate' if p.tracks else 'per frame')
        self.get_logger().info(
            f'localizing {self.image_topic} ({self.image_type}) with GNSS {p.gnss_topic} '
            f'on {len(self.pipeline.localizer.index.xy_m)} tiles ({p.backend} backend); '
            f'publishing ~/pose, ~/pose_with_covariance, ~/fix ({track}), each frame on '
            f'~/frame/pose_with_covariance, /tf ({"on" if p.publish_tf else "off"}), '
            '/diagnostics, ~/debug/image and ~/debug/markers (when subscribed); ~/relocalize '
            'and initialpose re-initialise the tracker')

    # ------------------------------------------------------------------ start-up
    def _read_parameters(self, argv: list[str]) -> NodeParams:
        """Check the overrides, then declare every parameter, typed, with its descriptor.

        Accepted besides ours: rclpy's own (``use_sim_time``, ``start_type_description_
        service``: whatever this rclpy declared), ``qos_overrides.*``, and keys of a
        wildcard section (``/**``) of a params file, which may be other nodes' (ignored, with
        a log line). Refused: an unknown name given to this node (``-p``, or a section naming
        it): a misspelling.
        """
        defaults = NodeParams.defaults()
        overrides = {n: o.value for n, o in (getattr(self, '_parameter_overrides', {})
                                             or {}).items()}
        builtin = set(self.list_parameters([], 0).names)
        unknown = {n for n in overrides if n not in defaults and n not in builtin
                   and not n.startswith('qos_overrides.')}
        own, shared = parameter_sources(argv, node_name=self.get_name(),
                                        fully_qualified_name=self.get_fully_qualified_name())
        foreign = sorted(n for n in unknown if n in shared and n not in own)
        mine = sorted(unknown - set(foreign))
        if mine:
            raise ParameterError(f'unknown parameter(s) {mine}; known: {sorted(defaults)}')
        if foreign:
            self.get_logger().warn(f'ignoring parameter(s) {foreign} of a shared params-file '
                                   'section: not parameters of this node (misspelt?)')
        params = NodeParams.from_dict(defaults | {n: v for n, v in overrides.items()
                                                  if n in defaults})
        for name in defaults:
            # the checked value, so that types and ranges were reported in our words above
            self.declare_parameter(name, getattr(params, name),
                                   self._descriptor(name, getattr(params, name)),
                                   ignore_override=True)
        return params

    @staticmethod
    def _descriptor(name: str, value):
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

        d = describe(name)
        desc = ParameterDescriptor(name=name, description=d['description'],
                                   read_only=not d['dynamic'])
        if d['range'] is not None:
            lo, hi = d['range']
            if isinstance(value, int) and not isinstance(value, bool):
                desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi),
                                                   step=1)]
            else:
                desc.floating_point_range = [FloatingPointRange(
                    from_value=float(lo), to_value=float(hi), step=0.0)]
        return desc

    def _on_set_parameters(self, changed):
        """``ros2 param set``: apply the run-time parameters, refuse the rest with a reason."""
        from rcl_interfaces.msg import SetParametersResult

        ours = {c.name: c.value for c in changed if c.name in NodeParams.defaults()}
        if not ours:
            return SetParametersResult(successful=True)
        fixed = sorted(set(ours) - NodeParams.dynamic_names())
        if fixed:
            return SetParametersResult(successful=False, reason=(
                f'parameter(s) {fixed} are read at start-up: restart the node to change them '
                f'(settable at run time: {sorted(NodeParams.dynamic_names())})'))
        try:
            new = NodeParams.from_dict(asdict(self.params) | ours)
        except ParameterError as e:
            return SetParametersResult(successful=False, reason=str(e))
        loc = self.pipeline.localizer
        loc.cfg = replace(loc.cfg, top_k=new.top_k, gate_sigmas=new.gate_sigmas)
        self.pipeline.fixes.policy = new.fix_policy()
        self.params = new
        self.get_logger().info(f'parameters set: {ours}')
        return SetParametersResult(successful=True)

    def _build_pipeline(self, p: NodeParams) -> None:
        from ciper_ros.runtime.assemble import open_localizer
        from ciper_ros.runtime.pipeline import FramePipeline

        try:
            loc = open_localizer(**p.localizer_args())
        except CiperError:
            raise
        except (OSError, ValueError, ImportError, RuntimeError) as e:
            raise StartupError(str(e)) from None
        tracker = None
        if p.tracks:
            from ciper_ros.runtime.tracker import DriveTracker

            tracker = DriveTracker(config=p.tracker_config())
        self.pipeline = FramePipeline(localizer=loc, config=p.pipeline_config(),
                                      tracker=tracker)

    def _warm_up(self) -> float:
        """Run one inference on a dummy frame at the first tile; return how long it took (ms)."""
        from ciper_ros.runtime.localizer import Prior

        loc = self.pipeline.localizer
        h, w = loc.ground_hw
        lat, lon = (float(v) for v in loc.index.latlon_deg[0])
        t0 = time.perf_counter()
        try:
            loc.localize(np.full((h, w, 3), 127, np.uint8), Prior(lat, lon, sigma_m=1.0))
        except (ValueError, RuntimeError) as e:
            raise StartupError(f'warm-up inference ({self.params.backend} backend) failed: '
                               f'{e}') from None
        ms = 1e3 * (time.perf_counter() - t0)
        self.get_logger().info(f'warm-up inference ({self.params.backend} backend): '
                               f'{ms:.0f} ms')
        return ms

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg) -> None:
        self.rates['image'].tick()
        self.seen['image'] = time.monotonic()
        self._offer(msg, stamp_ns(msg.header.stamp))

    def _on_rig_image(self, camera: int, msg) -> None:
        """One rig camera's image: a frame leaves once every camera has one at its stamp."""
        self.rates['image'].tick()
        self.seen['image'] = time.monotonic()
        got = self.rig_sync.add(camera, stamp_ns(msg.header.stamp), msg)
        if got is not None:
            self._offer(got[1], got[0])

    def _offer(self, item, stamp: int) -> None:
        """Hand a frame (a message, or a rig's tuple of them) to the worker: newest wins."""
        with self._cv:
            if self._stop:
                return                             # shutting down: no new frames
            self.outputs.note_image(stamp)
            self.counts['received'] += 1
            if self._slot is not None:
                self.counts['dropped'] += 1        # the waiting frame is stale: replace it
            self._slot = (item, time.monotonic())
            self._cv.notify()

    def _on_rig_camera_info(self, camera: int, msg) -> None:
        from ciper_ros.rosmsg.convert import camera_info_to_camera, MessageError

        self.rates['camera_info'].tick()
        try:
            self.rig_infos[camera].add(stamp_ns(msg.header.stamp), camera_info_to_camera(msg))
        except MessageError as e:
            self.last['error'] = f'CameraInfo of rig camera {camera}: {e}'
        with self._info_cv:
            self._info_cv.notify_all()

    def _on_camera_info(self, msg) -> None:
        self.rates['camera_info'].tick()
        why = self.pipeline.add_camera_info(stamp_ns(msg.header.stamp), msg)
        if why:
            self.last['error'] = f'CameraInfo: {why}'
        with self._info_cv:
            self._info_cv.notify_all()

    def _on_fix(self, msg) -> None:
        self.rates['gnss'].tick()
        why = self.pipeline.add_fix(stamp_ns(msg.header.stamp), msg)
        if why:
            self.counts['bad_fixes'] += 1
            self.last['fix_reason'] = why
        else:
            self.seen['gnss_fix'] = time.monotonic()

    def _on_odom(self, msg) -> None:
        from ciper_ros.rosmsg.convert import yaw_of

        self.rates['odom'].tick()
        p = msg.pose.pose
        odom = (p.position.x, p.position.y, yaw_of(p.orientation))
        est = self.pipeline.add_odometry(stamp_ns(msg.header.stamp), *odom)
        if est is not None:                   # tracking: the estimate at odometry rate
            self._publish_tracked(est, msg.header.stamp, odom)

    def _on_initial_pose(self, msg) -> None:
        """``initialpose`` (RViz's "2D Pose Estimate"): re-initialise the tracker there."""
        from ciper_ros.rosmsg.convert import MessageError, planar_pose_of

        tracker = self.pipeline.tracker
        if tracker is None:
            self.last['error'] = ('initialpose ignored: the node does not track (tracking '
                                  'off, or no odom_topic)')
            self.get_logger().warn(self.last['error'])
            return
        frame = str(msg.header.frame_id)
        if frame not in ('', self.params.map_frame):
            self.last['error'] = (f"initialpose ignored: frame '{frame}' is not "
                                  f"'{self.params.map_frame}'")
            self.get_logger().warn(self.last['error'])
            return
        try:
            xy, yaw, cov = planar_pose_of(msg)
        except MessageError as e:
            self.last['error'] = f'initialpose ignored: {e}'
            self.get_logger().warn(self.last['error'])
            return
        tracker.set_pose(stamp_ns(msg.header.stamp), xy, yaw, cov)
        self.get_logger().info(f'initialpose: tracker re-initialised at ({xy[0]:.2f}, '
                               f'{xy[1]:.2f}) m, {math.degrees(yaw):.1f} deg')

    def _on_relocalize(self, request, response):
        """``~/relocalize``: forget the track; frames search the whole map until it settles."""
        tracker = self.pipeline.tracker
        if tracker is None:
            response.success = False
            response.message = ('the node does not track (tracking off, or no odom_topic): '
                                'every frame is already localized on its own')
            return response
        tracker.relocalize()
        response.success = True
        response.message = ('relocalizing: the next frames search the whole map, GNSS '
                            'ignored until they settle the tracker')
        self.get_logger().info(response.message)
        return response

    def _on_tf_static(self, msg) -> None:
        from ciper_ros.runtime.mount import tf_edges

        try:
            edges = tf_edges(msg)
        except ValueError as e:
            self.counts['bad_tf'] += 1
            self.last['error'] = f'/tf_static: {e}'
            return
        self.pipeline.add_static_transforms(edges)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            with self._cv:
                while self._slot is None and not self._stop:
                    self._cv.wait(0.5)
                if self._slot is None:             # stopping, and no frame waits
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
        from ciper_ros.runtime.pipeline import Frame

        self.counts['processed'] += 1
        if isinstance(msg, tuple):            # a rig frame: one message per camera
            frame = self._rig_frame(msg)
            msg = msg[0]
        else:
            stamp = stamp_ns(msg.header.stamp)
            try:
                rgb, error = self.pipeline.decode(msg, self.image_type), ''
            except MessageError as e:
                rgb, error = None, f'bad image: {e}'
                self.counts['bad_images'] += 1
            if rgb is not None and self.pipeline.needs_camera(rgb):
                self._wait_for_camera_info(stamp)
            frame = Frame(stamp_ns=stamp, image=rgb, frame_id=str(msg.header.frame_id),
                          error=error)
        stamp = frame.stamp_ns
        jumps = self.pipeline.time_jumps
        rec = self.pipeline.process(frame)
        if self.pipeline.time_jumps != jumps:   # the clock went back: history is void
            self.outputs.reset()
            self.counts['time_jumps'] += 1
            self.get_logger().warn('time jumped back: GNSS and odometry buffers cleared')
        why = self.pipeline.tf_static.last_error
        if why:
            self.last['error'] = why
        self.last['output'] = rec
        self.debug.publish(msg.header.stamp, rec)
        if not rec.ok:
            self._reject(stamp, rec.reason)
            return
        self._publish(rec, msg.header.stamp)
        self.counts['localized'] += 1
        self.last['ok'] = True
        self._processing_ms.append(1e3 * (time.monotonic() - t_recv))
        self._latency_ms.append(1e-6 * (self.get_clock().now().nanoseconds - stamp))

    def _rig_frame(self, msgs: tuple):
        """Decode a rig frame's images and pair each with its camera's CameraInfo."""
        from ciper_ros.rosmsg.convert import MessageError
        from ciper_ros.runtime.pipeline import Frame, View

        stamp = stamp_ns(msgs[0].header.stamp)
        views = []
        for i, m in enumerate(msgs):
            name = f'rig camera {i} ({m.header.frame_id or "?"})'
            try:
                rgb = self.pipeline.decode(m, self.image_type)
            except MessageError as e:
                self.counts['bad_images'] += 1
                return Frame(stamp_ns=stamp, image=None, error=f'bad image of {name}: {e}')
            t = stamp_ns(m.header.stamp)
            self._wait_for_camera_info(t, self.rig_infos[i])
            camera, why = self.rig_infos[i].at(t)
            if camera is None:
                return Frame(stamp_ns=stamp, image=None, error=f'{name}: {why}')
            if (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
                return Frame(stamp_ns=stamp, image=None, error=(
                    f'{name}: CameraInfo is {camera.width}x{camera.height}, the image '
                    f'{rgb.shape[1]}x{rgb.shape[0]}'))
            views.append(View(image=rgb, camera=camera, frame_id=str(m.header.frame_id)))
        return Frame(stamp_ns=stamp, image=None, frame_id=str(msgs[0].header.frame_id),
                     views=tuple(views))

    def _wait_for_camera_info(self, stamp: int, buf=None) -> None:
        """Give the CameraInfo with the image's stamp ``camera_info_wait_s`` to arrive.

        Cameras publish image and CameraInfo with one stamp, but the two may arrive in either
        order: waiting for the matching one (not taking whichever came last) makes the result
        independent of arrival timing, as it is offline.
        """
        buf = self.pipeline.camera_infos if buf is None else buf
        deadline = time.monotonic() + self.params.camera_info_wait_s
        with self._info_cv:
            while not buf.has_exact(stamp) and not (buf.newest_ns() or -1) >= stamp:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop:
                    return
                self._info_cv.wait(left)

    def buffer_values(self) -> dict:
        """Return what the sensor buffers hold, for diagnostics (GNSS, odometry, mounts)."""
        pipe, vals = self.pipeline, {}
        newest = pipe.fixes.newest_ns()
        now = self.get_clock().now().nanoseconds
        vals['gnss_age_s'] = round((now - newest) * 1e-9, 3) if newest else math.nan
        vals['gnss_buffered'] = len(pipe.fixes)
        info_ns = pipe.camera_infos.newest_ns()
        cam = pipe.camera_infos.at(info_ns)[0] if info_ns is not None else None
        if cam is not None:
            vals['camera_hfov_deg'] = math.degrees(cam.hfov_rad)
        vals['camera_info_buffered'] = len(pipe.camera_infos)
        vals['odom_buffered'] = len(pipe.odometry)
        if pipe.tracker is not None:
            vals.update(pipe.tracker.status())
        mounts = pipe.tf_static.mounts()
        vals['tf_static_edges'] = len(pipe.tf_static)
        vals['camera_mount'] = '; '.join(f'{f or "?"}: {m.source} ({m.x_m:.2f}, {m.y_m:.2f} m, '
                                         f'{math.degrees(m.yaw_rad):.1f} deg)'
                                         for f, m in mounts.items())
        return vals

    # ------------------------------------------------------------------ outputs
    def _publish(self, rec, stamp) -> None:
        """Publish a localized frame on the debug topic, and as the pose unless tracking."""
        self.outputs.publish_frame(stamp, x_m=rec.x_m, y_m=rec.y_m, yaw_rad=rec.yaw_rad,
                                   covariance=rec.covariance)
        if self.pipeline.tracker is not None:
            return
        self.outputs.publish(stamp, x_m=rec.x_m, y_m=rec.y_m, yaw_rad=rec.yaw_rad,
                             covariance=rec.covariance, lat_deg=rec.lat_deg,
                             lon_deg=rec.lon_deg,
                             map_to_odom=rec.map_to_odom if self.params.odom_topic else None)
        self.seen['pose'] = time.monotonic()

    def _publish_tracked(self, est, stamp, odom: tuple[float, float, float]) -> None:
        """Publish the tracker's estimate at an odometry stamp, and map -> odom from it."""
        from ciper_ros.geo.se2 import SE2

        x, y = (float(v) for v in est.xy_m)
        T_map_odom = SE2(x, y, est.yaw_rad) @ SE2(*odom).inv()
        lat, lon = self.pipeline.localizer.index.plane.latlon_from_xy_m(
            np.array([[x, y]]))[0]
        self.outputs.publish(stamp, x_m=x, y_m=y, yaw_rad=est.yaw_rad,
                             covariance=est.covariance, lat_deg=float(lat),
                             lon_deg=float(lon),
                             map_to_odom=(T_map_odom.x_m, T_map_odom.y_m, T_map_odom.yaw_rad))
        self.seen['pose'] = time.monotonic()

    def close(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Stop taking frames; the one in progress and the one waiting finish and go out."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._worker.join(timeout=timeout_s)
        if self._worker.is_alive():
            self.get_logger().warn(f'the frame in progress did not finish in {timeout_s:g} s')
        self.outputs.flush(FLUSH_TIMEOUT_S)


def _rcl_message(e: Exception) -> str:
    """Return an rcl error without its source locations (", at /project/src/rcl/...")."""
    text = str(e).split(', at /')[0]
    return text.replace('failed to initialize rcl: ', '')


def main(argv: list[str] | None = None) -> int:
    """Run the node until SIGINT / SIGTERM; 2 for a user's mistake (one line), else 0."""
    if rclpy is None:
        print(f'localize_node needs rclpy (ROS 2 or `make venv`): {_RCLPY_ERROR}',
              file=sys.stderr)
        return 1
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    args = list(sys.argv if argv is None else argv)
    try:
        check_ros_args(args)
        # our own handlers: rclpy's shut the context down at once, and the frame in
        # progress could then not be published
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except ParameterError as e:
        print(f'localize_node: {e}', file=sys.stderr)
        return 2
    except RuntimeError as e:          # rcl refused the command line (RCLError)
        print(f'localize_node: {_rcl_message(e)}', file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        stop.set()
        signal.signal(signum, signal.SIG_DFL)       # a second one ends the process at once

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        node = LocalizeNode(argv=args)
    except CiperError as e:
        print(f'localize_node: {e}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)     # returns so that the handler can run
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if rclpy.ok():
            node.get_logger().info('shutting down: finishing the frame in progress')
        else:                        # the context was shut down from outside
            print(f'[{node.get_name()}] shutting down', file=sys.stderr)
        node.close()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
