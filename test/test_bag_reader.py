"""One reader for rosbag2 (mcap) and ROS 1 bags; corrupt bags and topic options."""

import shutil

import numpy as np
import pytest

from ciper_ros.bag.reader import Bag, bag_paths, BagTopics, is_bag, read_recording
from ciper_ros.ros.isolation import domain_from_env, isolated_ros_env
from ciper_ros.rosmsg.build import deserialize
from ciper_ros.rosmsg.convert import camera_info_to_camera, to_rgb
from ciper_ros.util.errors import CorruptFileError, UserError

from drivefixtures import small_drive_bags


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    return (root, *small_drive_bags(root))


def test_what_counts_as_a_bag(bags, tmp_path):
    root, ros2, ros1 = bags
    assert bag_paths(ros2) == [ros2]
    assert bag_paths(ros2 / 'drive.mcap') == [ros2]
    assert bag_paths(ros1) == [ros1 / 'drive.bag']         # a folder holding a .bag
    assert bag_paths(ros1 / 'drive.bag') == [ros1 / 'drive.bag']
    (tmp_path / 'a.png').write_bytes(b'')
    assert not is_bag(tmp_path) and not is_bag(tmp_path / 'a.png')
    with pytest.raises(FileNotFoundError):
        Bag(tmp_path / 'missing')
    with pytest.raises(UserError, match='not a rosbag2 folder'):
        Bag(tmp_path)


def test_ros1_and_rosbag2_read_the_same(bags):
    _, ros2, ros1 = bags
    a, b = read_recording(ros2), read_recording(ros1)
    try:
        assert b.bag.is_ros1 and not a.bag.is_ros1
        assert a.topics == b.topics and a.topics.image == '/camera/image_raw/compressed'
        assert [i[0] for i in a.images] == [i[0] for i in b.images] and len(a.images) == 6
        assert [f[0] for f in a.fixes] == [f[0] for f in b.fixes]
        assert np.array_equal(a.truth, b.truth) and len(a.tf_edges) == len(b.tf_edges) == 1
        assert camera_info_to_camera(a.camera_infos[0][1]) == \
            camera_info_to_camera(b.camera_infos[0][1])
        for (_, _, ra, ta, fa), (_, _, rb, tb, fb) in zip(a.images, b.images, strict=True):
            assert fa == fb == 'camera_optical_frame'
            assert np.array_equal(to_rgb(a.bag.deserialize(ra, ta), ta),
                                  to_rgb(b.bag.deserialize(rb, tb), tb))
        # replay publishes CDR: ROS 1 messages are converted (Header loses seq)
        for (ca, _, xa), (cb, _, xb) in zip(a.bag.raw_messages({'/camera/camera_info'}),
                                            b.bag.raw_messages({'/camera/camera_info'}),
                                            strict=True):
            ma = deserialize(a.bag.cdr(xa, ca.msgtype), ca.msgtype)
            mb = deserialize(b.bag.cdr(xb, cb.msgtype), cb.msgtype)
            assert np.array_equal(ma.k, mb.k) and ma.header.stamp == mb.header.stamp
    finally:
        a.bag.close()
        b.bag.close()


def test_topics_are_options_and_unknown_ones_are_named(bags):
    _, ros2, _ = bags
    with pytest.raises(UserError, match=r"no topic\(s\) \{'gnss': '/gps'\}"):
        read_recording(ros2, BagTopics(gnss='/gps'))
    rec = read_recording(ros2, BagTopics(image='/camera/image_raw', odom=''))
    rec.bag.close()
    assert rec.topics.image == '/camera/image_raw' and rec.topics.odom == ''
    assert rec.odometry == [] and len(rec.images) == 6
    with pytest.raises(UserError, match='is sensor_msgs/msg/NavSatFix, not an image'):
        read_recording(ros2, BagTopics(image='/gnss/fix'))


def test_an_mcap_corrupted_in_the_middle_is_one_clear_error(bags, tmp_path):
    _, ros2, _ = bags
    bad = tmp_path / 'drive'
    shutil.copytree(ros2, bad)
    f = bad / 'drive.mcap'
    data = bytearray(f.read_bytes())
    mid = len(data) // 2
    data[mid:mid + len(data) // 4] = b'\xff' * (len(data) // 4)
    f.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=f'bag {bad} is corrupt'):
        read_recording(bad)


def test_dds_commands_keep_the_users_domain(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', '42')
    assert domain_from_env() == 42
    assert isolated_ros_env()['ROS_DOMAIN_ID'] == '42'
    assert isolated_ros_env(domain_id=7)['ROS_DOMAIN_ID'] == '7'
    monkeypatch.setenv('ROS_DOMAIN_ID', 'abc')
    with pytest.raises(UserError, match='ROS_DOMAIN_ID must be an integer'):
        isolated_ros_env()
    monkeypatch.delenv('ROS_DOMAIN_ID')
    assert 1 <= int(isolated_ros_env()['ROS_DOMAIN_ID']) <= 101


def test_ground_truth_may_be_odometry(tmp_path):
    """``--truth-topic`` takes PoseStamped or Odometry (e.g. a fleet's RTK/INS solution)."""
    from rosbags.rosbag2 import Writer

    from ciper_ros.rosmsg import build as m

    bag = tmp_path / 'odom_truth'
    ts, t0 = m.typestore(), 1_700_000_000 * 1_000_000_000
    with Writer(bag, version=9) as w:
        img = w.add_connection('/camera/image_raw/compressed', m.COMPRESSED_IMAGE,
                               typestore=ts)
        odo = w.add_connection('/ins/odometry', m.ODOMETRY, typestore=ts)
        for i in range(3):
            t = t0 + i * 100_000_000
            w.write(img, t, m.serialize(m.image_compressed(t, 'cam', np.zeros((8, 8, 3),
                                                                               np.uint8))))
            w.write(odo, t, m.serialize(m.odometry(t, 10.0 + i, -5.0, 0.25 * i, 1.0, 0.0,
                                                   frame_id='map')))
    rec = read_recording(bag, BagTopics(truth='/ins/odometry'))
    rec.bag.close()
    assert rec.truth.tolist() == [[t0 + i * 100_000_000, 10.0 + i, -5.0,
                                   pytest.approx(0.25 * i)] for i in range(3)]
