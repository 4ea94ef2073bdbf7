"""Bag replay over real DDS: the rate, /tf_static for late subscribers, ROS 1 bags."""

import time

import pytest

from ciper_ros.bag.reader import read_recording
from ciper_ros.bag.replay import BagPlayer, open_for_replay
from ciper_ros.util.errors import UserError

from drivefixtures import small_drive_bags

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('tf2_msgs.msg')
S = 1_000_000_000


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    return small_drive_bags(tmp_path_factory.mktemp('replay'))


@pytest.fixture
def node():
    rclpy.init()
    n = rclpy.create_node('ciper_test_replay')
    yield n
    n.destroy_node()
    rclpy.try_shutdown()


def _spin_until(node, done, timeout_s: float = 20.0) -> None:
    t0 = time.monotonic()
    while not done() and time.monotonic() - t0 < timeout_s:
        rclpy.spin_once(node, timeout_sec=0.02)


def test_inputs_are_checked_before_dds(bags):
    ros2, _ = bags
    with pytest.raises(UserError, match='rate must be positive'):
        open_for_replay(ros2, rate=0.0)
    with pytest.raises(UserError, match=r"has no topic\(s\) \['/gps'\]"):
        open_for_replay(ros2, topics=['/gps'])


@pytest.mark.parametrize('which', ['ros2', 'ros1'])
def test_replay_keeps_bag_time_at_the_rate(bags, node, which):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import NavSatFix

    bag = dict(zip(('ros2', 'ros1'), bags, strict=True))[which]
    got = []
    node.create_subscription(NavSatFix, '/gnss/fix', got.append,
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    player = BagPlayer(node, bag, rate=0.5, topics=['/gnss/fix'], clock=False)
    try:
        player.wait_for_subscribers(['/gnss/fix'], timeout_s=30)
        sent = player.play(progress=False)
    finally:
        player.close()
    _spin_until(node, lambda: len(got) == len(sent))
    rec = read_recording(bag)
    rec.bag.close()
    want = [t for t, _ in rec.fixes]
    assert [m.header.stamp.sec * S + m.header.stamp.nanosec for m in got] == want
    assert got[0].status.status == 0 and abs(got[0].latitude) > 0     # converted, not garbage
    # half speed: the wall time between the first and last message is twice the bag time
    bag_s = (sent[-1].t_ns - sent[0].t_ns) * 1e-9
    wall_s = sent[-1].wall_s - sent[0].wall_s
    assert bag_s > 0.5 and wall_s == pytest.approx(bag_s / 0.5, rel=0.1, abs=0.05)


def test_tf_static_reaches_a_subscriber_that_joins_late(bags, node):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    player = BagPlayer(node, bags[0], topics=['/tf_static'], clock=False)
    try:
        assert player.publish_latched() == 1         # nobody listens yet
        late = rclpy.create_node('ciper_test_late_tf')
        got = []
        late.create_subscription(TFMessage, '/tf_static', got.append, QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        _spin_until(late, lambda: bool(got))
        late.destroy_node()
    finally:
        player.close()
    assert got and got[0].transforms[0].child_frame_id == 'camera_optical_frame'
