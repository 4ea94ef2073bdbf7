"""localize_node as a separate process over real DDS (isolated: see conftest.py).

A test node publishes camera frames, camera_info, GNSS fixes and /tf_static, and receives
the node's PoseStamped, PoseWithCovarianceStamped, NavSatFix, TF and diagnostics. Then a
stream of malformed input; a burst while the worker is busy and SIGTERM with a frame in
progress (frames made slow on purpose, seen in progress on diagnostics: no fixed sleeps);
map -> odom republished and future-dated; diagnostics going stale; publish_tf and a late
/tf_static; and replay under use_sim_time against the offline evaluation. Parameters over
DDS (shared files, ``ros2 param set``, start-up errors): test_ros_node_params.py.
"""

import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ciper_ros.rosmsg.convert import fill_image

from drivefixtures import bag_frames, city_index_drive

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('tf2_msgs.msg')

NODE = 'ciper_localizer'
S = 1_000_000_000


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('node')
    bag = city_index_drive(root, duration_s=6.0)
    frames = [f for f in bag_frames(bag) if f['prior'] is not None]
    return root, bag, frames


def start_node(root: Path, *, params_file: Path | None = None, **params) -> subprocess.Popen:
    args = {'index': str(root / 'index'), 'image_topic': '/test/image',
            'camera_info_topic': '/test/camera_info', 'gnss_topic': '/test/fix',
            'diagnostics_period_s': 0.2, 'stale_after_s': 60.0} | params
    cmd = [sys.executable, '-m', 'ciper_ros.ros.node', '--ros-args']
    if params_file is not None:           # -p overrides given after it win, as with ros2 run
        cmd += ['--params-file', str(params_file)]
    for k, v in args.items():
        cmd += ['-p', f'{k}:={str(v).lower() if isinstance(v, bool) else v}']
    return subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop_node(proc: subprocess.Popen, sig=signal.SIGINT) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


class Harness:
    """The test's own node: inputs out, the localize node's outputs in."""

    def __init__(self, proc):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, NavSatFix
        from tf2_msgs.msg import TFMessage

        self.proc = proc
        self.node = rclpy.create_node('ciper_test_harness')
        rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = self.node.create_publisher(Image, '/test/image', rel)
        self.pub_info = self.node.create_publisher(CameraInfo, '/test/camera_info', rel)
        self.pub_fix = self.node.create_publisher(NavSatFix, '/test/fix', rel)
        from nav_msgs.msg import Odometry
        self.pub_odom = self.node.create_publisher(Odometry, '/test/odom', rel)
        self.pub_static = self.node.create_publisher(TFMessage, '/tf_static', QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.got = {'pose': [], 'cov': [], 'fix': [], 'tf': [], 'diag': []}
        self.tf_wall_ns: list[int] = []            # when each /tf message arrived
        self.subs = [
            self.node.create_subscription(PoseStamped, f'/{NODE}/pose',
                                          self.got['pose'].append, rel),
            self.node.create_subscription(PoseWithCovarianceStamped,
                                          f'/{NODE}/pose_with_covariance',
                                          self.got['cov'].append, rel),
            self.node.create_subscription(NavSatFix, f'/{NODE}/fix', self.got['fix'].append,
                                          rel),
            self.node.create_subscription(TFMessage, '/tf', self._on_tf, rel),
            self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                          self.got['diag'].append, rel)]

    def _on_tf(self, msg):
        self.got['tf'].append(msg)
        self.tf_wall_ns.append(time.time_ns())

    def spin_until(self, cond, timeout_s=60.0, what='condition'):
        t0 = time.monotonic()
        while not cond():
            assert self.proc.poll() is None, f'node died:\n{self.proc.stdout.read()}'
            assert time.monotonic() - t0 < timeout_s, f'timed out waiting for {what}'
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def spin_for_tf(self, match, what='a transform', timeout_s=60.0):
        """Spin until a /tf transform satisfies ``match``; return it."""
        found = []

        def look():
            found.extend(tf for m in self.got['tf'] for tf in m.transforms if match(tf))
            return bool(found)

        self.spin_until(look, timeout_s=timeout_s, what=what)
        return found[-1]

    def wait_matched(self):
        # never a fixed sleep: wait until DDS matched both directions
        self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in
                                    (self.pub_image, self.pub_fix, self.pub_static))
                        and all(s.get_publisher_count() > 0 for s in self.subs[:3]),
                        timeout_s=120, what='the node to subscribe and advertise')

    def diag(self) -> dict:
        if not self.got['diag']:
            return {}
        st = [s for s in self.got['diag'][-1].status if s.name.startswith(NODE)][0]
        level = st.level if isinstance(st.level, int) else int.from_bytes(st.level, 'little')
        return {kv.key: kv.value for kv in st.values} | {'_level': level,
                                                         '_message': st.message}

    def wait_processed(self, n: int):
        self.spin_until(lambda: int(self.diag().get('processed', -1)) >= n, timeout_s=60,
                        what=f'{n} processed frames')

    def send_fix(self, stamp_ns, lat, lon, *, status=0, sigma=3.6):
        from sensor_msgs.msg import NavSatFix

        f = NavSatFix()
        f.header.stamp.sec, f.header.stamp.nanosec = divmod(int(stamp_ns), S)
        f.header.frame_id = 'gnss_link'
        f.status.status = status
        f.latitude, f.longitude, f.altitude = float(lat), float(lon), 500.0
        f.position_covariance = [sigma ** 2, 0.0, 0.0, 0.0, sigma ** 2, 0.0, 0.0, 0.0, 1.0]
        f.position_covariance_type = NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN
        self.pub_fix.publish(f)

    def send_odom(self, stamp_ns, x, y, yaw):
        from nav_msgs.msg import Odometry

        from ciper_ros.rosmsg.convert import fill_pose

        o = Odometry()
        o.header.stamp.sec, o.header.stamp.nanosec = divmod(int(stamp_ns), S)
        o.header.frame_id, o.child_frame_id = 'odom', 'base_link'
        fill_pose(o.pose.pose, x, y, yaw)
        self.pub_odom.publish(o)

    def send_image(self, stamp_ns, rgb=None, *, frame_id='camera_pano_frame', **fields):
        from sensor_msgs.msg import Image

        msg = Image()
        if rgb is not None:
            fill_image(msg, rgb)
        for k, v in fields.items():
            setattr(msg, k, v)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), S)
        msg.header.frame_id = frame_id
        self.pub_image.publish(msg)

    def send_mount(self, x_m=1.5):
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        tf = TransformStamped()
        tf.header.frame_id, tf.child_frame_id = 'base_link', 'camera_pano_frame'
        tf.transform.translation.x, tf.transform.translation.z = x_m, 1.6
        tf.transform.rotation.w = 1.0
        self.pub_static.publish(TFMessage(transforms=[tf]))

    def call(self, service: str, srv_type, request, timeout_s: float = 30.0):
        """Call one of the node's services (e.g. set_parameters) and return the response."""
        client = self.node.create_client(srv_type, f'/{NODE}/{service}')
        try:
            self.spin_until(client.service_is_ready, timeout_s=timeout_s,
                            what=f'service {service}')
            future = client.call_async(request)
            self.spin_until(future.done, timeout_s=timeout_s, what=f'{service} response')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_params(self, **values) -> list:
        """``ros2 param set``: SetParameters on the node; the results, one per value."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                for k, v in values.items()])
        return list(self.call('set_parameters', SetParameters, req).results)

    def close(self):
        self.node.destroy_node()


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def _index_plane(root):
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.runtime.index import read_info

    return LocalTangentPlane(*read_info(root / 'index')['datum_latlon_deg'])


def _stamp(header) -> int:
    return header.stamp.sec * S + header.stamp.nanosec


def _planar(tf):
    from ciper_ros.rosmsg.convert import yaw_of

    tr = tf.transform
    return (tr.translation.x, tr.translation.y, yaw_of(tr.rotation))


def _truth_xy(frame, root):
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.runtime.index import read_info

    info = frame['drive_info']['city']
    x, y, yaw = frame['truth_xy_yaw']
    ll = LocalTangentPlane(info['lat0_deg'], info['lon0_deg']).latlon_from_xy_m(
        np.array([[x, y]]))
    plane = LocalTangentPlane(*read_info(root / 'index')['datum_latlon_deg'])
    return plane.xy_m_from_latlon(ll)[0], yaw


def _compose(a, b):
    """(x, y, yaw) of planar transform a * b, yaw wrapped to [-pi, pi]."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return (a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1],
            math.remainder(a[2] + b[2], 2 * math.pi))


def test_node_publishes_poses_tf_and_diagnostics(world, ros, repo_root):
    from ciper_ros.rosmsg.convert import yaw_of

    root, _, frames = world
    # started like `ros2 run ciper_ros localize_node --ros-args --params-file ...`
    proc = start_node(root, params_file=repo_root / 'config' / 'localize.yaml',
                      odom_topic='/test/odom', tracking=False)
    h = Harness(proc)
    odom = {}                        # odometry (drifted frame) for the last three frames
    try:
        h.send_mount(1.5)          # the drive's camera sits 1.5 m ahead of base_link
        h.wait_matched()
        h.spin_until(lambda: h.pub_odom.get_subscription_count() > 0, what='odom matched')
        errors = []
        for k, fr in enumerate(frames[:6]):  # fixes first: each frame then has its own
            h.send_fix(fr['t_ns'], fr['prior'].lat_deg, fr['prior'].lon_deg)
            if k >= 3:
                odom[fr['t_ns']] = (100.0 + k, -50.0, 0.3)
                h.send_odom(fr['t_ns'], *odom[fr['t_ns']])
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '6'
                     and h.diag().get('odom_buffered') == '3', what='fixes and odometry')
        plane = _index_plane(root)
        for i, fr in enumerate(frames[:6]):
            t = fr['t_ns']
            h.send_image(t, fr['image'])
            h.spin_until(lambda i=i: len(h.got['cov']) > i and len(h.got['fix']) > i,
                         what=f'pose {i}')
            ps, pc = h.got['pose'][-1], h.got['cov'][-1]
            for hdr in (ps.header, pc.header, h.got['fix'][-1].header):
                assert hdr.stamp.sec * S + hdr.stamp.nanosec == t     # the image stamp
            assert ps.header.frame_id == pc.header.frame_id == 'map'
            pose = (ps.pose.position.x, ps.pose.position.y, yaw_of(ps.pose.orientation))
            if t in odom:   # map -> odom such that map -> odom -> base_link is the pose,
                # future-dated by transform_tolerance (0.5 s) from the image stamp at least
                tf = h.spin_for_tf(lambda tf, t=t, pose=pose: tf.child_frame_id == 'odom'
                                   and _compose(_planar(tf), odom[t]) == pytest.approx(
                                       pose, abs=1e-6), what=f'map -> odom of pose {i}')
                assert tf.header.frame_id == 'map'
                assert _stamp(tf.header) >= t + S // 2
            else:           # no odometry at this stamp: the debug frame at the pose
                tf = h.spin_for_tf(lambda tf, t=t: _stamp(tf.header) == t,
                                   what=f'debug frame of pose {i}')
                assert (tf.header.frame_id, tf.child_frame_id) == ('map', 'ciper_base_link')
                assert _planar(tf) == pytest.approx(pose, abs=1e-6)
            cov = np.array(pc.pose.covariance).reshape(6, 6)
            assert cov.shape == (6, 6) and np.allclose(cov, cov.T)
            assert all(cov[k, k] == 1e6 for k in (2, 3, 4))             # z, roll, pitch
            assert cov[0, 0] > 0 and cov[1, 1] > 0 and 0 < cov[5, 5] < 10
            assert np.all(np.linalg.eigvalsh(cov[np.ix_([0, 1, 5], [0, 1, 5])]) > 0)
            truth, _ = _truth_xy(fr, root)
            errors.append(np.hypot(pose[0] - truth[0], pose[1] - truth[1]))
            # ~/fix is the pose itself, through the index datum (to 1 mm)
            fix = h.got['fix'][-1]
            assert fix.status.status == 0 and math.isnan(fix.altitude)
            fix_xy = plane.xy_m_from_latlon(np.array([[fix.latitude, fix.longitude]]))[0]
            assert np.hypot(*(fix_xy - pose[:2])) < 1e-3
            assert np.array(fix.position_covariance)[[0, 1, 3, 4]] == pytest.approx(
                cov[np.ix_([0, 1], [0, 1])].ravel())
        assert np.median(errors) < 8.0, errors       # measured: 2.4 m median on such drives
        h.spin_until(lambda: h.diag().get('localized') == '6', what='diagnostics')
        d = h.diag()
        assert d['_level'] == 0 and d['_message'] == 'localized'
        for key in ('time_ground_encoder_ms', 'time_pose_decoder_ms', 'time_total_ms',
                    'candidates', 'score', 'sigma_x_m', 'sigma_yaw_deg', 'covariance_xy_yaw',
                    'last_rejection', 'image_rate_hz', 'gnss_rate_hz', 'gnss_age_s',
                    'latency_median_ms', 'dropped'):
            assert key in d, key
        assert 'tf_static: base_link -> camera_pano_frame (1.50, 0.00 m' in d['camera_mount']
        assert int(d['candidates']) >= 1 and d['dropped'] == '0'
        assert float(d['warmup_ms']) > 0
    finally:
        h.close()
        code, log = stop_node(proc, signal.SIGTERM)
    assert code == 0, log                      # SIGTERM: clean shutdown
    assert 'shutting down' in log
    # the warm-up inference ran before the node subscribed to images
    assert log.index('warm-up inference (torch backend)') < log.index('localizing /test/image')


def test_node_survives_malformed_input_and_recovers(world, ros):
    root, _, frames = world
    proc = start_node(root)
    h = Harness(proc)
    try:
        h.wait_matched()
        fr = frames[0]
        t, rgb = fr['t_ns'], fr['image']
        lat, lon = fr['prior'].lat_deg, fr['prior'].lon_deg
        n = 0
        bad_images = [
            {'encoding': 'yuv422', 'height': 4, 'width': 4, 'step': 8, 'data': bytes(32)},
            {'encoding': 'rgb8', 'height': 128, 'width': 512, 'step': 1536, 'data': bytes(99)},
            {'encoding': 'rgb8', 'height': 0, 'width': 0, 'step': 0, 'data': b''},
            {'encoding': 'rgb8', 'height': 2, 'width': 2, 'step': 10 ** 9, 'data': bytes(12)},
            {'encoding': 'mono16', 'height': 3, 'width': 3, 'step': 5, 'data': bytes(20)},
            # degenerate sizes: refused when decoded, before the localizer (OpenCV asserted)
            {'encoding': 'rgb8', 'height': 1, 'width': 100000, 'step': 300000,
             'data': bytes(300000)},
            {'encoding': 'rgb8', 'height': 1, 'width': 1, 'step': 3, 'data': bytes(3)},
        ]
        reasons = []
        for k, fields in enumerate(bad_images):
            h.send_image(t + k * S // 10, **fields)
            n += 1
            h.wait_processed(n)
            reasons.append(h.diag()['last_rejection'])
            assert reasons[-1].startswith('bad image'), h.diag()
        assert int(h.diag()['bad_images']) == len(bad_images)
        assert 'image is 100000x1 px: degenerate' in reasons[-2]
        assert 'image is 1x1 px: degenerate' in reasons[-1]
        # a good image of the wrong camera (aspect) is rejected with the reason
        h.send_fix(t + S, lat, lon)
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '1', what='fix buffered')
        h.send_image(t + S, rgb[:, :64].copy())
        n += 1
        h.wait_processed(n)
        assert 'no CameraInfo' in h.diag()['last_rejection']     # a forward camera's image?
        from sensor_msgs.msg import CameraInfo
        info = CameraInfo(width=320, height=240)
        info.k = [160.0, 0.0, 160.0, 0.0, 160.0, 120.0, 0.0, 0.0, 1.0]
        h.pub_info.publish(info)
        h.spin_until(lambda: 'camera_hfov_deg' in h.diag(), what='camera_info received')
        h.send_image(t + S + 1, rgb[:, :64].copy())
        n += 1
        h.wait_processed(n)
        assert 'CameraInfo is 320x240, the image 64x128' in h.diag()['last_rejection']
        # fixes: NaN, NO_FIX, then one far outside the map
        h.send_fix(t + 2 * S, math.nan, lon)
        h.send_fix(t + 2 * S, lat, lon, status=-1)
        h.spin_until(lambda: int(h.diag().get('bad_fixes', 0)) >= 2, what='bad fixes counted')
        h.send_image(t + 2 * S + S // 10, rgb)
        n += 1
        h.wait_processed(n)
        assert h.diag()['last_rejection'].startswith('GNSS fix is stale'), h.diag()
        h.send_fix(t + 3 * S, lat + 0.5, lon)
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '2', what='fix buffered')
        h.send_image(t + 3 * S, rgb)
        n += 1
        h.wait_processed(n)
        assert 'no indexed tile' in h.diag()['last_rejection']
        # time jumps back by 100 s: buffers cleared, then it works again at the new time
        t2 = t - 100 * S
        h.send_image(t2, rgb)
        n += 1
        h.wait_processed(n)
        assert h.diag()['time_jumps'] == '1'
        # and localizes again at the new time
        h.send_fix(t2, lat, lon)
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '1', what='fix buffered')
        h.send_image(t2 + 1, rgb)
        h.spin_until(lambda: h.got['cov'] and _stamp(h.got['cov'][-1].header) == t2 + 1,
                     what='a pose after the time jump')
        h.spin_until(lambda: h.diag().get('_level') == 0, what='diagnostics OK')
        assert proc.poll() is None
    finally:
        h.close()
        code, log = stop_node(proc)
    assert code == 0, log


@pytest.mark.parametrize('params, message', [
    ({'top_k': 0}, "parameter 'top_k' must be in 1..64"),
    ({'topk': 3}, "unknown parameter(s) ['topk']"),
    ({'gate_sigmas': 'wide'}, "parameter 'gate_sigmas' must be float"),
    ({'index': '/nonexistent/index'}, '/nonexistent/index'),
])
def test_node_refuses_bad_parameters_at_start_up(world, params, message):
    root, _, _ = world
    proc = start_node(root, **params)
    try:
        log, _ = proc.communicate(timeout=120)
    finally:
        stop_node(proc)
    code = proc.returncode
    assert code == 2 and message in log, log
    assert 'Traceback' not in log


def test_replay_under_sim_time_equals_offline_evaluation(world, tmp_path):
    from ciper_ros.cli import main

    root, bag, _ = world
    common = [str(bag), '--index', str(root / 'index')]
    assert main(['bag', 'eval', *common, '--out', str(tmp_path / 'off')]) == 0
    assert main(['bag', 'eval', *common, '--online', '--rate', '0.5',
                 '--out', str(tmp_path / 'on')]) == 0
    import csv
    off = {r['stamp_ns']: r for r in csv.DictReader((tmp_path / 'off' / 'frames.csv').open())}
    on = {r['stamp_ns']: r for r in csv.DictReader((tmp_path / 'on' / 'frames.csv').open())}
    assert off.keys() == on.keys() and len(off) == 31
    both = [k for k in off if off[k]['ok'] == on[k]['ok'] == 'True']
    assert len(both) >= 0.9 * len(off)        # at half speed the node drops (almost) nothing
    for k in both:
        a, b = off[k], on[k]
        assert math.hypot(float(a['x_m']) - float(b['x_m']),
                          float(a['y_m']) - float(b['y_m'])) < 1e-3
        assert abs(math.remainder(float(a['yaw_rad']) - float(b['yaw_rad']), 2 * math.pi)) < 1e-4
        assert float(a['sigma_x_m']) == pytest.approx(float(b['sigma_x_m']), rel=1e-4)
    for d in ('off', 'on'):
        for f in ('report.md', 'metrics.json', 'trajectory.png', 'error_time.png',
                  'error_cdf.png', 'latency.png'):
            assert (tmp_path / d / f).stat().st_size > 100, (d, f)
    import json
    m = json.loads((tmp_path / 'on' / 'metrics.json').read_text())
    assert m['meta']['node_exit_code'] == 0 and m['metrics']['latency_ms_median'] > 0
    # the GNSS + odometry baseline on the same drive, tuned on its truth, beside CIPER
    for d in ('off', 'on'):
        m = json.loads((tmp_path / d / 'metrics.json').read_text())
        base = m['metrics']['baseline']
        assert base['frames'] == 31 and base['position_error_m_median'] > 0
        assert m['meta']['baseline']['grid_points'] == 50
        assert m['meta']['baseline']['gnss_used'] > 0
        assert 'GNSS + odometry EKF (same drive)' in (tmp_path / d / 'report.md').read_text()


def test_bag_replay_publishes_bag_time_with_clock(world, ros):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import NavSatFix
    from tf2_msgs.msg import TFMessage

    from ciper_ros.bag.reader import Bag, stamp_ns

    _, bag, frames = world
    node = rclpy.create_node('ciper_test_replay_sub')
    got = {'fix': [], 'clock': [], 'tf_static': []}
    rel = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(NavSatFix, '/gnss/fix', got['fix'].append, rel)
    node.create_subscription(Clock, '/clock', got['clock'].append, rel)
    node.create_subscription(TFMessage, '/tf_static', got['tf_static'].append, QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    proc = subprocess.Popen([sys.executable, '-m', 'ciper_ros.cli', 'bag', 'replay', str(bag),
                             '--rate', '3', '--topic', '/gnss/fix', '--topic', '/tf_static',
                             '--wait-for', '/gnss/fix'], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 60:
            rclpy.spin_once(node, timeout_sec=0.02)
        for _ in range(50):                 # what is still in flight
            rclpy.spin_once(node, timeout_sec=0.02)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
    assert proc.returncode == 0, out
    assert 'replayed' in out and 'on 2 topics' in out and 'not acknowledged' not in out
    # the 6 s bag's fixes (5 Hz) in order, none lost once the first arrived (the replay
    # drains its reliable writers before exiting, so not the last either); bag time on
    # /clock, never going back. --wait-for sees the replay's writer match the subscription;
    # the subscription can match the writer a moment later and drop what came before (DDS
    # discovery is two one-way exchanges), so the first fix may be missed, never a later one.
    stamps = [f.header.stamp.sec * S + f.header.stamp.nanosec for f in got['fix']]
    with Bag(bag) as b:
        recorded = [stamp_ns(b.deserialize(raw, c.msgtype), t)
                    for c, t, raw in b.raw_messages({'/gnss/fix'})]
    assert len(recorded) == 31 and len(stamps) >= 30 and stamps == recorded[-len(stamps):]
    clock = [c.clock.sec * S + c.clock.nanosec for c in got['clock']]
    assert len(clock) > 31 and clock == sorted(clock)
    assert clock[-1] >= stamps[-1] and clock[0] >= frames[0]['t_ns'] - S
    assert got['tf_static'] and got['tf_static'][0].transforms[0].child_frame_id


# 24 aerial encodings; every frame published (a 60 m prior can fail the match threshold)
SLOW = {'top_k': 24, 'cache_mb': 0.0, 'max_prior_sigma_m': 200.0, 'min_match_prob': 0.0,
        'gate_sigmas': 100.0}
SLOW_FIX_SIGMA_M = 60.0                                             # a frame: slow on CPU


def _start_slow_frame(h, stamp, rgb, *, attempts=5):
    """Send frames until one is seen in progress (processed, not finished); its stamp.

    A frame that finished before diagnostics showed it in progress (a fast machine) is
    replaced by the next stamp, so the caller's precondition holds whatever the speed.
    """
    def finished(d):
        return int(d['localized']) + int(d['rejected'])

    for k in range(attempts):
        d0 = h.diag()
        processed, done = int(d0['processed']), finished(d0)
        h.send_image(stamp + k, rgb)
        h.spin_until(lambda p=processed, f=done: int(h.diag()['processed']) > p
                     or finished(h.diag()) > f, what='the frame to start')
        if finished(h.diag()) == done:
            return stamp + k
        h.spin_until(lambda: int(h.diag()['processed']) == finished(h.diag()),
                     what='an idle worker')
    raise AssertionError(f'no frame was slow enough to be seen in progress in {attempts}')


def _idle(h):
    d = h.diag()
    return int(d['processed']) == int(d['localized']) + int(d['rejected'])


def test_burst_keeps_the_newest_frame_and_sigterm_publishes_the_frame_in_progress(world, ros):
    root, _, frames = world
    proc = start_node(root, diagnostics_period_s=0.05, **SLOW)
    h = Harness(proc)
    try:
        h.wait_matched()
        fr = frames[0]
        rgb, lat, lon = fr['image'], fr['prior'].lat_deg, fr['prior'].lon_deg
        # a burst while the worker is busy: the waiting frame is replaced each time, so of
        # the burst only the newest is processed (no backlog). Should the busy frame end
        # before the burst arrived (a fast machine), the accounting still holds; the
        # scenario is repeated until the worker was seen busy throughout.
        kept_newest_only = False
        for attempt in range(3):
            t = fr['t_ns'] + attempt * S
            h.send_fix(t, lat, lon, sigma=SLOW_FIX_SIGMA_M)
            h.spin_until(lambda a=attempt: h.diag().get('gnss_buffered') == str(a + 1),
                         what='fix buffered')
            busy = _start_slow_frame(h, t + S // 100, rgb)
            d0 = h.diag()
            burst = [t + S // 10 + k * S // 1000 for k in range(10)]
            for stamp in burst:
                h.send_image(stamp, rgb)
            h.spin_until(lambda b=burst: any(_stamp(m.header) == b[-1] for m in h.got['cov']),
                         what='the newest burst frame')
            h.spin_until(lambda: _idle(h), what='an idle worker')
            d = h.diag()
            posed = [_stamp(m.header) for m in h.got['cov']
                     if _stamp(m.header) in [busy, *burst]]
            assert posed[0] == busy and posed[-1] == burst[-1], posed   # the newest wins
            received = int(d['received']) - int(d0['received'])  # DDS may drop some first
            processed = int(d['processed']) - int(d0['processed'])
            dropped = int(d['dropped']) - int(d0['dropped'])
            assert 1 <= received <= len(burst) and processed + dropped == received
            if posed == [busy, burst[-1]]:
                assert processed == 1 and dropped == received - 1
                kept_newest_only = True
                break
        assert kept_newest_only
        # SIGTERM while a frame is in progress: it finishes and its pose is published
        slow = _start_slow_frame(h, burst[-1] + S // 10, rgb)
        assert not h.got['cov'] or _stamp(h.got['cov'][-1].header) != slow
        proc.send_signal(signal.SIGTERM)
        h.spin_until(lambda: any(_stamp(m.header) == slow for m in h.got['cov']),
                     timeout_s=60, what='the pose of the frame in progress at SIGTERM')
        assert any(_stamp(m.header) == slow for m in h.got['pose'] + h.got['fix'])
        proc.wait(timeout=60)                  # by itself: one signal is enough
    finally:
        h.close()
        code, log = stop_node(proc, signal.SIGTERM)
    assert code == 0, log
    assert 'shutting down' in log and 'Traceback' not in log


def test_map_to_odom_republished_at_rate_and_diagnostics_go_stale(world, ros):
    """Keep map -> odom coming after a localized frame; go stale when the inputs stop.

    /tf carries the last correction at tf_rate_hz, future-dated by transform_tolerance,
    while frames are rejected and after they stop; diagnostics go from OK to ERROR.
    """
    root, _, frames = world
    rate_hz, tolerance_s = 10.0, 2.0
    proc = start_node(root, odom_topic='/test/odom', tracking=False, tf_rate_hz=rate_hz,
                      transform_tolerance=tolerance_s)
    h = Harness(proc)
    try:
        h.wait_matched()
        h.spin_until(lambda: h.pub_odom.get_subscription_count() > 0, what='odom matched')
        fr = frames[0]
        t = fr['t_ns']
        odom = (20.0, 5.0, -0.4)
        h.send_fix(t, fr['prior'].lat_deg, fr['prior'].lon_deg)
        h.send_odom(t, *odom)
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '1'
                     and h.diag().get('odom_buffered') == '1', what='fix and odometry')
        h.send_image(t, fr['image'])
        h.spin_until(lambda: len(h.got['pose']) == 1, what='the pose')
        from ciper_ros.rosmsg.convert import yaw_of

        ps = h.got['pose'][0].pose
        pose = (ps.position.x, ps.position.y, yaw_of(ps.orientation))
        h.spin_until(lambda: h.diag().get('_level') == 0, what='diagnostics OK')
        # a rejected frame (its fix is 5 s stale): map -> odom keeps coming regardless
        h.send_image(t + 5 * S, fr['image'])
        h.wait_processed(2)
        assert 'stale' in h.diag()['last_rejection']
        n0 = len(h.got['tf'])
        h.spin_until(lambda: len(h.got['tf']) >= n0 + 15, what='15 republished map -> odom')
        tfs = [m.transforms[0] for m in h.got['tf'][n0:]]
        stamps = [_stamp(tf.header) for tf in tfs]
        for tf in tfs:                                 # the last correction, every time
            assert (tf.header.frame_id, tf.child_frame_id) == ('map', 'odom')
            assert _compose(_planar(tf), odom) == pytest.approx(pose, abs=1e-6)
        assert stamps == sorted(set(stamps))           # strictly increasing: no repeats
        period_s = float(np.median(np.diff(stamps))) * 1e-9
        assert 0.5 / rate_hz < period_s < 2.0 / rate_hz, period_s
        # future-dated: the node's clock (wall time here) plus the tolerance
        ahead_s = [(st - wall) * 1e-9 for st, wall in
                   zip(stamps, h.tf_wall_ns[n0:n0 + len(stamps)], strict=True)]
        assert all(tolerance_s - 1.0 < a <= tolerance_s + 0.01 for a in ahead_s), ahead_s
        # inputs stop: ERROR once images are older than stale_after_s (set at run time)
        assert all(r.successful for r in h.set_params(stale_after_s=0.5))
        h.spin_until(lambda: h.diag().get('_level') == 2, what='diagnostics ERROR')
        msg = h.diag()['_message']
        assert 'no images on /test/image for' in msg and 'no valid GNSS fix on /test/fix' in msg
        assert 'no pose for' in msg, msg
        assert float(h.diag()['since_image_s']) > 0.5
    finally:
        h.close()
        code, log = stop_node(proc)
    assert code == 0, log


def test_publish_tf_false_then_set_true_and_late_tf_static(world, ros):
    """Publish no /tf with publish_tf:=false; use /tf_static once it arrives.

    `ros2 param set publish_tf true` starts /tf. A frame before /tf_static uses the
    parameter mount, the same frame after it the mount /tf_static gives.
    """
    root, _, frames = world
    proc = start_node(root, odom_topic='/test/odom', tracking=False, publish_tf=False,
                      camera_x_m=0.0)
    h = Harness(proc)
    try:
        h.wait_matched()
        h.spin_until(lambda: h.pub_odom.get_subscription_count() > 0, what='odom matched')
        fr = frames[0]
        t, rgb = fr['t_ns'], fr['image']
        for stamp in (t, t + S // 10):
            h.send_fix(stamp, fr['prior'].lat_deg, fr['prior'].lon_deg)
            h.send_odom(stamp, 1.0, 2.0, 0.1)
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '2'
                     and h.diag().get('odom_buffered') == '2', what='fixes and odometry')
        h.send_image(t, rgb)
        h.spin_until(lambda: len(h.got['pose']) == 1, what='the first pose')
        h.spin_until(lambda: h.diag().get('localized') == '1', what='diagnostics')
        assert 'parameters (0.00, 0.00 m' in h.diag()['camera_mount']
        # ten diagnostics later (2 s, 40 republish periods): still nothing on /tf
        n = len(h.got['diag'])
        h.spin_until(lambda: len(h.got['diag']) >= n + 10, what='ten diagnostics')
        assert h.got['tf'] == [] and h.diag()['tf_sent'] == '0'
        # /tf_static arrives late: the next frame uses the mount it gives
        h.send_mount(1.5)
        h.spin_until(lambda: h.diag().get('tf_static_edges') == '1', what='tf_static')
        h.send_image(t + S // 10, rgb)
        h.spin_until(lambda: len(h.got['pose']) == 2, what='the second pose')
        from ciper_ros.rosmsg.convert import yaw_of

        (a, b) = (m.pose for m in h.got['pose'])
        yaw = yaw_of(b.orientation)
        assert yaw_of(a.orientation) == pytest.approx(yaw, abs=1e-9)   # the same camera pose
        # base_link = camera - R(yaw) (1.5, 0): 1.5 m behind the first (parameter) one
        assert (a.position.x - b.position.x, a.position.y - b.position.y) == pytest.approx(
            (1.5 * math.cos(yaw), 1.5 * math.sin(yaw)), abs=1e-3)
        h.spin_until(lambda: h.diag().get('localized') == '2', what='diagnostics')
        assert 'tf_static: base_link -> camera_pano_frame (1.50' in h.diag()['camera_mount']
        # publish_tf set at run time takes effect: the latest correction comes on /tf
        assert all(r.successful for r in h.set_params(publish_tf=True))
        h.spin_until(lambda: len(h.got['tf']) >= 3, what='/tf after publish_tf true')
        assert h.got['tf'][-1].transforms[0].child_frame_id == 'odom'
    finally:
        h.close()
        code, log = stop_node(proc)
    assert code == 0, log



def test_a_camera_info_arriving_after_its_image_is_paired_by_stamp(world, ros):
    """Pair a forward camera's CameraInfo that comes 10 ms after its image, by stamp.

    An older CameraInfo of another size came before it: the frame must use its own, not
    whichever arrived last when the worker took the frame.
    """
    from sensor_msgs.msg import CameraInfo

    from ciper_ros.bag.reader import BagTopics, read_recording
    from ciper_ros.rosmsg.convert import to_rgb

    root, bag, frames = world
    rec = read_recording(bag, BagTopics(image='/camera/image_raw/compressed'))
    stamp, _, raw, msgtype, _ = rec.images[0]
    rgb = to_rgb(rec.bag.deserialize(raw, msgtype), msgtype)
    rec.bag.close()
    prior = next(f['prior'] for f in frames if f['t_ns'] == stamp)

    def info(t_ns, w, h):
        m = CameraInfo()
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(int(t_ns), S)
        m.header.frame_id = 'camera_optical_frame'
        m.width, m.height = w, h
        f = w / 2.0                                      # 90 degrees horizontal
        m.k = [f, 0.0, (w - 1) / 2.0, 0.0, f, (h - 1) / 2.0, 0.0, 0.0, 1.0]
        return m

    proc = start_node(root, min_match_prob=0.0)     # pairing is tested, not the match
    h = Harness(proc)
    try:
        h.wait_matched()
        h.spin_until(lambda: h.pub_info.get_subscription_count() > 0, what='camera_info')
        h.send_fix(stamp - 100_000_000, prior.lat_deg, prior.lon_deg)
        h.pub_info.publish(info(stamp - S, 640, 360))        # older, and of another size
        h.spin_until(lambda: h.diag().get('camera_info_buffered') == '1'
                     and h.diag().get('gnss_buffered') == '1', what='the first CameraInfo')
        h.send_image(stamp, rgb, frame_id='camera_optical_frame')
        time.sleep(0.01)                                     # the camera driver's lag
        h.pub_info.publish(info(stamp, rgb.shape[1], rgb.shape[0]))
        h.spin_until(lambda: len(h.got['cov']) == 1 or h.diag().get('rejected') == '1',
                     what='the frame')
        d = h.diag()
        assert len(h.got['cov']) == 1, d.get('last_rejection')
        assert _stamp(h.got['cov'][0].header) == stamp
    finally:
        code, out = stop_node(proc)
        h.node.destroy_node()
    assert code == 0, out


def _odom_of(xy_yaw, T_odom_map):
    return _compose(T_odom_map, xy_yaw)


def test_tracking_at_odometry_rate_initialpose_and_relocalize(world, ros):
    """With odometry the node tracks: ~/pose at odometry stamps, each frame on its own topic.

    The debug view (~/debug/image, ~/debug/markers) shows the estimates on the map.

    Then initialpose re-initialises the tracker (refused in a wrong frame), and
    ~/relocalize makes the next frame search the whole map (no prior), over DDS.
    """
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger
    from visualization_msgs.msg import Marker, MarkerArray

    from ciper_ros.rosmsg.convert import fill_pose, yaw_of

    root, _, frames = world
    proc = start_node(root, odom_topic='/test/odom', tf_rate_hz=0.0)
    h = Harness(proc)
    rel = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    got_frames = []
    sub = h.node.create_subscription(PoseWithCovarianceStamped,
                                     f'/{NODE}/frame/pose_with_covariance',
                                     got_frames.append, rel)
    pub_init = h.node.create_publisher(PoseWithCovarianceStamped, '/initialpose', rel)
    got_images, got_markers = [], []
    sub_img = h.node.create_subscription(Image, f'/{NODE}/debug/image', got_images.append,
                                         QoSProfile(depth=1,
                                                    reliability=ReliabilityPolicy.RELIABLE))
    sub_mk = h.node.create_subscription(MarkerArray, f'/{NODE}/debug/markers',
                                        got_markers.append, rel)
    T_odom_map = (-120.0, 35.0, 0.3)          # odometry starts elsewhere than the map origin
    try:
        h.wait_matched()
        h.spin_until(lambda: h.pub_odom.get_subscription_count() > 0
                     and pub_init.get_subscription_count() > 0
                     and sub.get_publisher_count() > 0 and sub_img.get_publisher_count() > 0
                     and sub_mk.get_publisher_count() > 0,
                     what='odometry, initialpose, frames, debug view')
        truth, odom_sent = {}, []
        n = 10
        for fr in frames[:n + 1]:
            xy, yaw = _truth_xy(fr, root)
            truth[fr['t_ns']] = (*xy, yaw)
        stamps = sorted(truth)
        for i, t in enumerate(stamps[:n]):
            # odometry at the frame and halfway to the next one (10 Hz), before the frame
            # is processed: the tracker moves the late frame to the odometry's time
            a, b = np.array(truth[t]), np.array(truth[stamps[i + 1]])
            mid = (a + b) / 2
            mid[2] = a[2] + math.remainder(b[2] - a[2], 2 * math.pi) / 2
            for ts, pose in ((t, a), ((t + stamps[i + 1]) // 2, mid)):
                h.send_odom(ts, *_odom_of(tuple(pose), T_odom_map))
                odom_sent.append(ts)
            fr = frames[i]
            h.send_fix(t, fr['prior'].lat_deg, fr['prior'].lon_deg)
            h.send_image(t, fr['image'])
            h.wait_processed(i + 1)
        h.spin_until(lambda: int(h.diag().get('tracker_frames_used', 0)) >= n - 2
                     and len(h.got['cov']) >= len(odom_sent) - 2, what='the tracked poses')
        d = h.diag()
        assert d['tracker'] in ('tracking', 'converging') and int(d['tracker_fixes_used']) >= n
        # the debug view of the frames: the map with the estimates drawn, and markers
        h.spin_until(lambda: got_images and got_markers, what='the debug view')
        img = got_images[-1]
        assert (img.width, img.height, img.encoding) == (512, 512, 'rgb8')
        assert img.header.frame_id == 'map' and _stamp(img.header) in set(stamps[:n])
        px = np.frombuffer(bytes(img.data), np.uint8).reshape(512, 512, 3)
        assert px.std() > 10                                  # the map, not a blank
        mk = got_markers[-1].markers
        assert mk[0].action == Marker.DELETEALL
        assert {'tracked', 'frame', 'hypotheses', 'particles', 'gnss'} <= {m.ns for m in mk}
        cloud = [m for m in mk if m.ns == 'particles'][0]
        assert cloud.type == Marker.POINTS and 0 < len(cloud.points) <= 500
        assert int(h.diag()['debug_images_sent']) >= 1
        tracked = {_stamp(m.header): m for m in h.got['cov']}
        assert set(tracked) <= set(odom_sent)                 # at odometry stamps
        assert {_stamp(m.header) for m in got_frames} <= set(stamps[:n])
        assert len(got_frames) >= n // 2                      # frames localized on their own
        last = max(tracked)
        p = tracked[last].pose.pose
        # truth at the last odometry stamp (the midpoint after the last frame)
        a, b = np.array(truth[stamps[n - 1]]), np.array(truth[stamps[n]])
        assert math.hypot(p.position.x - (a[0] + b[0]) / 2,
                          p.position.y - (a[1] + b[1]) / 2) < 3.0
        cov = np.asarray(tracked[last].pose.covariance).reshape(6, 6)
        assert 0 < cov[0, 0] < 25 and 0 < cov[5, 5] < 1
        # map -> odom from the tracked pose: composed with odometry it is that pose
        tf = [t for m in h.got['tf'] for t in m.transforms if t.child_frame_id == 'odom'][-1]
        assert _compose(_planar(tf), _odom_of(tuple((a + b) / 2), T_odom_map)) == \
            pytest.approx((p.position.x, p.position.y, yaw_of(p.orientation)), abs=1e-3)

        # initialpose (RViz "2D Pose Estimate"): the tracker restarts there, odometry moves it
        def initialpose(x, y, yaw, frame='map'):
            m = PoseWithCovarianceStamped()
            m.header.frame_id = frame                       # stamp 0, as tools often send
            fill_pose(m.pose.pose, x, y, yaw)
            c = np.zeros((6, 6))
            c[0, 0] = c[1, 1] = 0.04
            c[5, 5] = 1e-4
            m.pose.covariance = c.ravel().tolist()
            pub_init.publish(m)

        init = (p.position.x + 40.0, p.position.y - 30.0, yaw_of(p.orientation) + 0.5)
        initialpose(*init, frame='odom')
        h.spin_until(lambda: "initialpose ignored: frame 'odom'" in h.diag().get('last_error',
                                                                                 ''),
                     what='the wrong frame refused')
        initialpose(*init)
        h.spin_until(lambda: h.diag().get('tracker_pose_resets') == '1', what='the reset')
        odom_last = _odom_of(tuple((a + b) / 2), T_odom_map)
        h.send_odom(last + S // 10, *_compose(odom_last, (1.0, 0.0, 0.0)))  # 1 m ahead
        h.spin_until(lambda: max(_stamp(m.header) for m in h.got['cov']) == last + S // 10,
                     what='the pose after initialpose')
        q = [m for m in h.got['cov'] if _stamp(m.header) == last + S // 10][0].pose.pose
        want = _compose(init, (1.0, 0.0, 0.0))
        assert math.hypot(q.position.x - want[0], q.position.y - want[1]) < 0.8
        assert abs(math.remainder(yaw_of(q.orientation) - want[2], 2 * math.pi)) < 0.05

        # ~/relocalize: no state, the next frame searches the whole map without a prior
        res = h.call('relocalize', Trigger, Trigger.Request())
        assert res.success and 'whole map' in res.message
        h.spin_until(lambda: h.diag().get('tracker') == 'relocalizing', what='relocalizing')
        processed = int(h.diag()['processed'])
        t = last + S // 5
        h.send_fix(t, frames[n]['prior'].lat_deg, frames[n]['prior'].lon_deg)
        h.send_image(t, frames[n]['image'])
        h.wait_processed(processed + 1)
        h.spin_until(lambda: h.diag().get('last_stamp') == f'{t * 1e-9:.3f}',
                     what='the frame after relocalize in diagnostics')
        assert h.diag()['prior_source'] == 'none'
    finally:
        h.close()
        code, log = stop_node(proc)
    assert code == 0, log
    assert 'initialpose: tracker re-initialised' in log and 'relocalizing' in log


def test_a_camera_rig_over_four_topics_is_one_frame(world, ros):
    """Four cameras on their own topics with CameraInfo and /tf_static mounts: one pose.

    Images of one stamp arrive in any order and are matched by stamp; a set with a camera
    missing is never localized.
    """
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage

    from ciper_ros.geo.camera import rig_preset
    from ciper_ros.synth.folder import city_paths
    from ciper_ros.synth.render import CameraPose, GroundRenderer
    from ciper_ros.synth.world import World

    root, _, frames = world
    rig = rig_preset('surround4', width=256, height=144)
    topics = [f'/test/rig/{c.name}/image_raw' for c in rig]
    proc = start_node(root, rig_image_topics=','.join(topics), min_match_prob=0.0)
    h = Harness(proc)
    rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [h.node.create_publisher(Image, t, rel) for t in topics]
    infos = [h.node.create_publisher(CameraInfo, f'/test/rig/{c.name}/camera_info', rel)
             for c in rig]
    renderer = GroundRenderer(World.load(city_paths(root / 'city')[0]), epoch=0)
    try:
        h.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs + infos)
                     and h.pub_fix.get_subscription_count() > 0
                     and h.pub_static.get_subscription_count() > 0, timeout_s=120,
                     what='the rig topics')
        tfs = []
        for c in rig:
            tf = TransformStamped()
            tf.header.frame_id, tf.child_frame_id = 'base_link', f'cam_{c.name}'
            tf.transform.translation.x, tf.transform.translation.y = c.x_m, c.y_m
            tf.transform.translation.z = 1.7
            r = tf.transform.rotation
            r.z, r.w = math.sin(c.yaw_rad / 2), math.cos(c.yaw_rad / 2)
            tfs.append(tf)
        h.pub_static.publish(TFMessage(transforms=tfs))
        h.spin_until(lambda: h.diag().get('tf_static_edges') == '4', what='the mounts')
        fr = frames[2]
        (bx, by, byaw), t = fr['truth_xy_yaw'], fr['t_ns']
        h.send_fix(t - 50_000_000, fr['prior'].lat_deg, fr['prior'].lon_deg)
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '1', what='the fix')

        def send(i, stamp):
            c = rig[i]
            cs, sn = math.cos(byaw), math.sin(byaw)
            rgb = renderer.pinhole(CameraPose(bx + cs * c.x_m - sn * c.y_m,
                                              by + sn * c.x_m + cs * c.y_m, byaw + c.yaw_rad,
                                              z_m=1.7), c.camera)
            info = CameraInfo()
            info.header.stamp.sec, info.header.stamp.nanosec = divmod(int(stamp), S)
            info.header.frame_id = f'cam_{c.name}'
            info.width, info.height = c.camera.width, c.camera.height
            info.k = [c.camera.fx, 0.0, c.camera.cx, 0.0, c.camera.fy, c.camera.cy, 0.0, 0.0,
                      1.0]
            infos[i].publish(info)
            msg = fill_image(Image(), rgb)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp), S)
            msg.header.frame_id = f'cam_{c.name}'
            pubs[i].publish(msg)

        for i in (0, 1, 2):                   # an incomplete set: the rear-right one missing
            send(i, t - 300_000_000)
        for i in (3, 1, 0, 2):                # a full set, out of order, a few ms apart
            send(i, t + (i % 2) * 3_000_000)
        h.spin_until(lambda: len(h.got['cov']) == 1 or h.diag().get('rejected') == '1',
                     what='the rig frame')
        assert len(h.got['cov']) == 1, h.diag().get('last_rejection')
        h.spin_until(lambda: h.diag().get('localized') == '1', what='the diagnostics')
        assert h.diag()['processed'] == '1'   # the incomplete set never became a frame
        m = h.got['cov'][0]
        assert _stamp(m.header) == t          # the first (front) camera's stamp
        truth = _truth_xy(fr, root)[0]
        p = m.pose.pose.position
        assert math.hypot(p.x - truth[0], p.y - truth[1]) < 4.0
    finally:
        code, out = stop_node(proc)
        h.node.destroy_node()
    assert code == 0, out
