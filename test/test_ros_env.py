"""ROS 2 from pip wheels: rclpy, the locally built tf2_msgs, and DDS kept on this machine."""

import os
from pathlib import Path
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')
tf2_msgs_msg = pytest.importorskip('tf2_msgs.msg')

ROOT = Path(__file__).resolve().parents[1]


def test_dds_is_confined_to_this_machine():
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    profile = Path(os.environ['FASTDDS_DEFAULT_PROFILES_FILE']).read_text()
    assert '<type>SHM</type>' in profile and '<segment_size>33554432</segment_size>' in profile
    assert '<useBuiltinTransports>false</useBuiltinTransports>' in profile
    assert 0 <= int(os.environ['ROS_DOMAIN_ID']) <= 101


def test_tf2_msgs_type_hash_matches_upstream():
    from rosbags.typesys import get_typestore, Stores
    upstream = get_typestore(Stores.ROS2_KILTED).hash_rihs01('tf2_msgs/msg/TFMessage')
    rclpy.init()
    try:
        node = rclpy.create_node('ciper_hash_check')
        node.create_publisher(tf2_msgs_msg.TFMessage, '/ciper_test/tf', 1)
        info = node.get_publishers_info_by_topic('/ciper_test/tf')
        assert str(info[0].topic_type_hash) == upstream
        node.destroy_node()
    finally:
        rclpy.shutdown()


PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
    rclpy.init()
    node = rclpy.create_node('ciper_test_tf_pub')
    pub = node.create_publisher(TFMessage, '/ciper_test/tf_cross', 10)
    t0 = time.monotonic()
    while pub.get_subscription_count() < 1:  # wait for the match, never a fixed sleep
        if time.monotonic() - t0 > 20:
            sys.exit('no subscriber matched')
        rclpy.spin_once(node, timeout_sec=0.05)
    tf = TransformStamped()
    tf.header.frame_id = 'map'
    tf.child_frame_id = 'ciper_base_link'
    tf.transform.translation.x = 12.5
    tf.transform.rotation.w = 1.0
    for _ in range(100):
        pub.publish(TFMessage(transforms=[tf]))
        rclpy.spin_once(node, timeout_sec=0.05)
    rclpy.shutdown()
""")


def test_tfmessage_crosses_processes_over_dds():
    rclpy.init()
    try:
        node = rclpy.create_node('ciper_test_tf_sub')
        got = []
        node.create_subscription(tf2_msgs_msg.TFMessage, '/ciper_test/tf_cross',
                                 got.append, 10)
        proc = subprocess.Popen([sys.executable, '-c', PUBLISHER], env=dict(os.environ),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while not got and time.monotonic() - t0 < 30 and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert got, f'no TFMessage received; publisher said: {err[-2000:]}'
        tf = got[0].transforms[0]
        assert (tf.header.frame_id, tf.child_frame_id) == ('map', 'ciper_base_link')
        assert tf.transform.translation.x == 12.5
        node.destroy_node()
    finally:
        rclpy.shutdown()
