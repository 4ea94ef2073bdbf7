"""``ciper bag eval``: localize a recorded drive offline or through the live node.

Offline: the bag's frames go straight through :class:`~ciper_ros.runtime.pipeline.FramePipeline`
(the node's own per-frame code). Online: the real node runs as a separate process under
``use_sim_time``, this process replays the bag over DDS with /clock and records the node's
``~/pose_with_covariance``; frames the node dropped (it keeps only the newest) or rejected
have no pose. Both return one row per camera frame, with base_link ground truth, the GNSS
prior the node's rule picks, and the errors; :mod:`ciper_ros.experiments.report` turns them
into the report.

Online DDS stays on this machine: unless ``isolate`` is False the run gets its own domain
id, LOCALHOST discovery and a shared-memory-only profile (ciper_ros.ros.isolation).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.ros.params import NodeParams
from ciper_ros.runtime.frames import bag_frames
from ciper_ros.runtime.mount import Mount, mount_or_default
from ciper_ros.util.errors import CiperError

NODE_NAME = 'ciper_localizer'


class NodeRunError(CiperError, RuntimeError):
    """The node of an online evaluation did not start or did not answer."""


def frame_mount(frame: dict, params: NodeParams) -> Mount:
    """Pick the mount as the node does: /tf_static when it reaches the frame, else params."""
    return mount_or_default(frame['tf_edges'], base_frame=params.base_frame,
                            camera_frame=frame['frame_id'],
                            default=Mount(params.camera_x_m, params.camera_y_m,
                                          params.camera_yaw_rad))[0]


def _reference(frame: dict, plane: LocalTangentPlane, datum: tuple[float, float] | None
               ) -> dict:
    """Truth (base_link) and the GNSS prior of a frame in the index's ENU frame."""
    ref = {'stamp_ns': frame['t_ns'], 'truth_x_m': math.nan, 'truth_y_m': math.nan,
           'truth_yaw_rad': math.nan, 'gnss_x_m': math.nan, 'gnss_y_m': math.nan,
           'prior_sigma_m': math.nan}
    info = frame.get('drive_info')
    if datum is None and info is not None:
        datum = (info['city']['lat0_deg'], info['city']['lon0_deg'])
    if 'truth_xy_yaw' in frame and datum is not None:
        x, y, yaw = frame['truth_xy_yaw']
        ll = LocalTangentPlane(*datum).latlon_from_xy_m(np.array([[x, y]]))
        ref['truth_x_m'], ref['truth_y_m'] = (float(v) for v in plane.xy_m_from_latlon(ll)[0])
        ref['truth_yaw_rad'] = float(yaw)
    p = frame.get('prior')
    if p is not None:
        g = plane.xy_m_from_latlon(np.array([[p.lat_deg, p.lon_deg]]))[0]
        ref['gnss_x_m'], ref['gnss_y_m'] = float(g[0]), float(g[1])
        ref['prior_sigma_m'] = p.sigma_m
    return ref


def _with_errors(row: dict) -> dict:
    for k in ('x_m', 'y_m', 'yaw_rad', 'latency_ms'):
        row.setdefault(k, math.nan)
    t = np.array([row['truth_x_m'], row['truth_y_m']])
    e = np.array([row['x_m'], row['y_m']]) - t
    row['error_m'] = float(np.linalg.norm(e))
    row['gnss_error_m'] = float(np.hypot(row['gnss_x_m'] - t[0], row['gnss_y_m'] - t[1]))
    row['yaw_error_deg'] = abs(math.degrees(math.remainder(row['yaw_rad'] - row['truth_yaw_rad'],
                                                           2 * math.pi)))
    cov = row.pop('cov_xy', None)
    row['nees_xy'] = math.nan
    if cov is not None and np.all(np.isfinite(e)) and np.all(np.isfinite(cov)):
        try:
            row['nees_xy'] = float(e @ np.linalg.solve(np.asarray(cov), e))
        except np.linalg.LinAlgError:
            pass
    return row


def offline_rows(localizer, bag: Path, *, params: NodeParams | None = None,
                 image_topic: str | None = None, datum=None, truth_topic: str | None = None,
                 progress: bool = True) -> list[dict]:
    """Run every frame of ``bag`` through the node's pipeline in this process."""
    from tqdm import tqdm

    from ciper_ros.runtime.pipeline import FramePipeline

    params = params or NodeParams(index=str(localizer.index.dir))
    pipe = FramePipeline(localizer=localizer)
    plane = localizer.index.plane
    kw = {'truth_topic': truth_topic} if truth_topic else {}
    rows = []
    for fr in tqdm(bag_frames(Path(bag), image_topic, policy=params.fix_policy(), **kw),
                   desc='localize (offline)', unit='frame', disable=not progress):
        ref = _reference(fr, plane, datum)
        if fr['image'] is None:
            row = {'ok': False, 'reason': fr.get('error', 'no image')}
        else:
            out = pipe.process(fr['image'], fr['t_ns'], frame_mount(fr, params), fr['prior'],
                               prior_reason=fr['prior_reason'], fix_age_s=fr['fix_age_s'],
                               camera=fr.get('camera'))
            row = out.row()
            row['cov_xy'] = out.covariance[:2, :2]
            row['latency_ms'] = out.timings_ms.get('pipeline', math.nan)
        rows.append(_with_errors(ref | row | {'stamp_ns': fr['t_ns']}))
    return _finish(rows)


def _finish(rows: list[dict]) -> list[dict]:
    t0 = rows[0]['stamp_ns'] if rows else 0
    for r in rows:
        r['t_s'] = (r['stamp_ns'] - t0) * 1e-9
    return rows


# ---------------------------------------------------------------------------- online
def _node_command(params: dict) -> list[str]:
    cmd = [sys.executable, '-m', 'ciper_ros.ros.node', '--ros-args', '-r',
           f'__node:={NODE_NAME}', '-p', 'use_sim_time:=true']
    for k, v in params.items():
        v = ('true' if v else 'false') if isinstance(v, bool) else v
        cmd += ['-p', f'{k}:={v}']
    return cmd


def _topic_params(frame_topic: str, topics: set[str]) -> dict:
    compressed = frame_topic.endswith('/compressed')
    base = frame_topic[:-len('/compressed')] if compressed else frame_topic
    out = {'image_topic': base, 'compressed': compressed, 'gnss_topic': '/gnss/fix'}
    info = base.rsplit('/', 1)[0] + '/camera_info'
    if info in topics:
        out['camera_info_topic'] = info
    if '/odom' in topics:
        out['odom_topic'] = '/odom'
    return out


def online_rows(bag: Path, *, index: str, model: str | None = None,
                node_params: dict | None = None, image_topic: str | None = None,
                rate: float = 1.0, datum=None, truth_topic: str | None = None,
                isolate: bool = True, progress: bool = True, log_path: Path | None = None,
                startup_timeout_s: float = 180.0) -> tuple[list[dict], dict]:
    """Replay ``bag`` to the real node (a child process); return (rows, run info)."""
    from rosbags.rosbag2 import Reader

    from ciper_ros.runtime.index import read_info

    bag = Path(bag)
    kw = {'truth_topic': truth_topic} if truth_topic else {}
    params = NodeParams.from_dict({'index': str(index), **({'model': str(model)} if model
                                                          else {}), **(node_params or {})})
    frames = list(bag_frames(bag, image_topic, policy=params.fix_policy(), decode=False, **kw))
    if not frames:
        raise ValueError(f'{bag} has no camera frames')
    with Reader(bag) as reader:
        topics = {c.topic for c in reader.connections}
    plane = LocalTangentPlane(*read_info(Path(index))['datum_latlon_deg'])
    node_args = {'index': str(index), **({'model': str(model)} if model else {}),
                 **_topic_params(frames[0]['topic'], topics), **(node_params or {})}
    if isolate:
        from ciper_ros.ros.isolation import isolated_ros_env

        os.environ.update(isolated_ros_env())
    log = open(log_path, 'w') if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(_node_command(node_args), env=dict(os.environ), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        poses, diag, sent = _drive_node(bag, proc, frames[0]['topic'], node_args['gnss_topic'],
                                        rate=rate, progress=progress,
                                        startup_timeout_s=startup_timeout_s,
                                        tf_static_edges=len(frames[0]['tf_edges']))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_path:
            log.close()
    rows = []
    for fr in frames:
        ref = _reference(fr, plane, datum)
        pose = poses.get(fr['t_ns'])
        if pose is None:
            row = {'ok': False, 'reason': fr['prior_reason'] if fr['prior'] is None else
                   'no pose published (dropped or rejected by the node)'}
        else:
            row = dict(pose)
            pub = sent.get(fr['bag_t_ns'])
            row['latency_ms'] = 1e3 * (row.pop('wall_s') - pub) if pub else math.nan
        rows.append(_with_errors(ref | row | {'stamp_ns': fr['t_ns']}))
    info = {'node_exit_code': proc.returncode, 'node_command': _node_command(node_args),
            'node_diagnostics': diag, 'rate': rate,
            'frames_published': len(sent)}
    return _finish(rows), info


def _drive_node(bag: Path, proc, image_topic: str, gnss_topic: str, *, rate: float,
                progress: bool, startup_timeout_s: float, tf_static_edges: int = 0):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from ciper_ros.bag.replay import BagPlayer
    from ciper_ros.rosmsg.convert import yaw_of

    poses: dict[int, dict] = {}
    diag: dict = {}
    sent: dict[int, float] = {}
    rclpy.init()
    try:
        node = rclpy.create_node('ciper_bag_eval')
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseWithCovarianceStamped

        def on_pose(msg):
            t = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            p = msg.pose.pose
            c = np.asarray(msg.pose.covariance).reshape(6, 6)
            poses[t] = {'ok': True, 'reason': '', 'x_m': p.position.x, 'y_m': p.position.y,
                        'yaw_rad': yaw_of(p.orientation),
                        'sigma_x_m': math.sqrt(c[0, 0]), 'sigma_y_m': math.sqrt(c[1, 1]),
                        'sigma_yaw_rad': math.sqrt(c[5, 5]), 'cov_xy': c[:2, :2].copy(),
                        'wall_s': time.monotonic()}

        def on_diag(msg):
            for st in msg.status:
                if st.name.startswith(NODE_NAME):
                    diag.clear()
                    diag.update({kv.key: kv.value for kv in st.values},
                                level=int.from_bytes(st.level, 'little')
                                if isinstance(st.level, bytes) else int(st.level),
                                message=st.message)

        sub = node.create_subscription(PoseWithCovarianceStamped,
                                       f'/{NODE_NAME}/pose_with_covariance', on_pose,
                                       QoSProfile(depth=200,
                                                  reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        player = BagPlayer(node, bag, rate=rate)

        def alive() -> bool:
            return proc.poll() is None

        def on_publish(rec, raw, msgtype):
            if rec.topic == image_topic:      # keyed by bag time: frames carry theirs
                sent[rec.t_ns] = rec.wall_s

        try:
            try:
                player.wait_for_subscribers([image_topic, gnss_topic, '/clock'],
                                            timeout_s=startup_timeout_s, alive=alive)
            except (TimeoutError, RuntimeError) as e:
                raise NodeRunError(f"{e} (the node's log says why)") from None
            t0 = time.monotonic()
            while sub.get_publisher_count() < 1:
                if not alive() or time.monotonic() - t0 > 30:
                    raise NodeRunError('the node did not advertise ~/pose_with_covariance')
                time.sleep(0.05)
            # the camera mount first: a frame processed before /tf_static arrives would use
            # the parameter mount (as a live node would), making the run order-dependent
            if tf_static_edges and player.publish_latched():
                t0 = time.monotonic()
                while int(diag.get('tf_static_edges', 0)) < tf_static_edges:
                    if not alive() or time.monotonic() - t0 > 30:
                        raise NodeRunError('the node did not receive /tf_static')
                    time.sleep(0.05)
            player.play(progress=progress, on_publish=on_publish)
            # the last frame may still be in the worker: wait until outputs stop changing
            last, t_idle = len(poses), time.monotonic()
            while time.monotonic() - t_idle < 2.0 and alive():
                time.sleep(0.1)
                if len(poses) != last:
                    last, t_idle = len(poses), time.monotonic()
        finally:
            player.close()
            executor.shutdown()
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
    if proc.poll() is not None and proc.returncode not in (0, None) and not poses:
        raise NodeRunError(f'the node exited with status {proc.returncode} (see its log)')
    return poses, diag, sent
