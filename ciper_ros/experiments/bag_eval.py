"""``ciper bag eval``: localize a recorded drive offline or through the live node.

Offline: the bag's frames go straight through
:class:`~ciper_ros.runtime.pipeline.FramePipeline` (the node's own per-frame code). Online:
the real node runs as a separate process under ``use_sim_time``, this process replays the
bag over DDS with /clock and records the node's ``~/frame/pose_with_covariance``; frames the node
dropped (it keeps only the newest) or rejected have no pose. Both return one
:class:`~ciper_ros.metrics.frames.FrameRecord` per camera frame, with base_link ground
truth and the GNSS prior the node's rule picks; :mod:`ciper_ros.experiments.report` turns
them into the report.

Online DDS stays on this machine: unless ``isolate`` is False the run gets LOCALHOST
discovery, a shared-memory-only profile and the caller's ``ROS_DOMAIN_ID`` (a random one
when unset; ciper_ros.ros.isolation).
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

from ciper_ros.bag.offline import offline_records as bag_offline_records
from ciper_ros.bag.reader import BagTopics, read_recording, reference_records
from ciper_ros.metrics.frames import FrameRecord
from ciper_ros.ros.params import NodeParams
from ciper_ros.util.errors import CiperError, UserError

NODE_NAME = 'ciper_localizer'
# node parameters that name topics: the bag's topics are options of `ciper bag eval`
TOPIC_PARAMS = ('image_topic', 'compressed', 'camera_info_topic', 'gnss_topic', 'odom_topic')


class NodeRunError(CiperError, RuntimeError):
    """The node of an online evaluation did not start or did not answer."""


def check_node_params(node_params: dict) -> None:
    """Refuse topic parameters: offline they would be silently ignored."""
    bad = sorted(set(node_params) & set(TOPIC_PARAMS))
    if bad:
        raise UserError(f'topics are options of `ciper bag eval` (--image-topic, --gnss-topic, '
                        f'--odom-topic, --camera-info-topic), not node parameters: {bad}')


def offline_records(localizer, bag: Path, *, params: NodeParams | None = None,
                    topics: BagTopics | None = None, datum=None,
                    progress: bool = True) -> list[FrameRecord]:
    """Run every frame of ``bag`` through the node's pipeline in this process."""
    params = params or NodeParams(index=str(localizer.index.dir))
    return bag_offline_records(localizer, bag, config=params.pipeline_config(), topics=topics,
                               datum_latlon_deg=datum, progress=progress)


# ---------------------------------------------------------------------------- online
def _node_command(params: dict) -> list[str]:
    cmd = [sys.executable, '-m', 'ciper_ros.ros.node', '--ros-args', '-r',
           f'__node:={NODE_NAME}', '-p', 'use_sim_time:=true']
    for k, v in params.items():
        v = ('true' if v else 'false') if isinstance(v, bool) else v
        cmd += ['-p', f'{k}:={v}']
    return cmd


def _topic_params(topics: BagTopics) -> dict:
    """Return the node's topic parameters for a bag's (resolved) topics."""
    compressed = topics.image.endswith('/compressed')
    out = {'image_topic': topics.image.removesuffix('/compressed'), 'compressed': compressed,
           'gnss_topic': topics.gnss or '/gnss/fix', 'camera_info_topic': topics.camera_info}
    if topics.odom:
        out['odom_topic'] = topics.odom
    return out


def online_records(bag: Path, *, index: str, model: str | None = None,
                   node_params: dict | None = None, topics: BagTopics | None = None,
                   rate: float = 1.0, datum=None, isolate: bool = True,
                   progress: bool = True, log_path: Path | None = None,
                   startup_timeout_s: float = 180.0) -> tuple[list[FrameRecord], dict]:
    """Replay ``bag`` to the real node (a child process); return (records, run info).

    Inputs are checked (parameters, bag, topics, index) before any DDS participant exists.
    DDS: ``isolate`` confines it to this machine and keeps the caller's ``ROS_DOMAIN_ID``
    when set (else a random domain). The records are the node's
    ``~/frame/pose_with_covariance``: each frame's own pose. The node runs with
    ``tracking:=false`` unless ``node_params`` say otherwise, so that its frames take the
    GNSS prior as the offline per-frame run does (the tracked series is run offline).
    """
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.runtime.index import read_info

    bag = Path(bag)
    node_params = {'tracking': False, **(node_params or {})}
    check_node_params(node_params)
    params = NodeParams.from_dict({'index': str(index), **({'model': str(model)} if model
                                                          else {}), **node_params})
    plane = LocalTangentPlane(*read_info(Path(index))['datum_latlon_deg'])
    rec = read_recording(bag, topics or BagTopics())
    rec.bag.close()
    if not rec.images:
        raise UserError(f'{bag} has no camera frames on {rec.topics.image}')
    records = reference_records(rec, plane=plane, fix_policy=params.fix_policy(),
                                datum_latlon_deg=datum)
    node_args = {'index': str(index), **({'model': str(model)} if model else {}),
                 **_topic_params(rec.topics), **node_params}
    if isolate:
        from ciper_ros.ros.isolation import isolated_ros_env

        os.environ.update(isolated_ros_env())
    log = open(log_path, 'w') if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(_node_command(node_args), env=dict(os.environ), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        poses, diag, sent = _drive_node(bag, proc, rec.topics.image, rec.topics.gnss,
                                        rate=rate, progress=progress,
                                        startup_timeout_s=startup_timeout_s,
                                        tf_static_edges=len(rec.tf_edges))
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
    for r, (_, bag_t_ns, *_) in zip(records, rec.images, strict=True):
        pose = poses.get(r.stamp_ns)
        if pose is None:
            if not r.reason:
                r.reason = 'no pose published (dropped or rejected by the node)'
            continue
        r.ok, r.reason = True, ''
        r.x_m, r.y_m, r.yaw_rad = pose['x_m'], pose['y_m'], pose['yaw_rad']
        r.covariance = pose['covariance']
        pub = sent.get(bag_t_ns)
        r.latency_ms = 1e3 * (pose['wall_s'] - pub) if pub else math.nan
    info = {'node_exit_code': proc.returncode, 'node_command': _node_command(node_args),
            'node_diagnostics': diag, 'rate': rate, 'frames_published': len(sent)}
    return records, info


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
            idx = [0, 1, 5]                                 # x, y, yaw of the 6x6
            poses[t] = {'x_m': p.position.x, 'y_m': p.position.y,
                        'yaw_rad': yaw_of(p.orientation),
                        'covariance': c[np.ix_(idx, idx)].copy(), 'wall_s': time.monotonic()}

        def on_diag(msg):
            for st in msg.status:
                if st.name.startswith(NODE_NAME):
                    diag.clear()
                    diag.update({kv.key: kv.value for kv in st.values},
                                level=int.from_bytes(st.level, 'little')
                                if isinstance(st.level, bytes) else int(st.level),
                                message=st.message)

        sub = node.create_subscription(PoseWithCovarianceStamped,
                                       f'/{NODE_NAME}/frame/pose_with_covariance', on_pose,
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
                player.wait_for_subscribers([t for t in (image_topic, gnss_topic, '/clock')
                                             if t],
                                            timeout_s=startup_timeout_s, alive=alive)
            except (TimeoutError, RuntimeError) as e:
                raise NodeRunError(f"{e} (the node's log says why)") from None
            t0 = time.monotonic()
            while sub.get_publisher_count() < 1:
                if not alive() or time.monotonic() - t0 > 30:
                    raise NodeRunError('the node did not advertise ~/frame/pose_with_covariance')
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
