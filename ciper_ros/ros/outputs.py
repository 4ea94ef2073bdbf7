"""The localize node's outputs: poses, the estimate as a NavSatFix, and TF.

Poses carry the image's capture stamp. TF is published as tf2_msgs/TFMessage directly (no
tf2_ros in pip installs):

* map -> odom (when odometry is available at the image stamp): the correction is kept and
  republished at ``tf_rate_hz`` on the steady clock, future-dated by
  ``transform_tolerance``, so TF has no gaps while frames are rejected or GNSS drops out.
  As Nav2 AMCL future-dates by its tolerance from the scan time, the stamp is the newer of
  the node's clock and the latest image stamp, plus the tolerance; a stamp not after the
  last one sent (sim time paused) is not sent again (tf2 warns on repeated stamps).
* map -> ``debug_child_frame`` (no odometry): the pose itself, at the image stamp, once.
"""

from __future__ import annotations

import threading

TIME_JUMP_BACK_S = 1.0        # an earlier stamp by more than this: the clock went back


class Outputs:
    def __init__(self, node) -> None:
        from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
        from rclpy.clock import Clock, ClockType
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import NavSatFix
        from tf2_msgs.msg import TFMessage

        self.node = node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_pose = node.create_publisher(PoseStamped, '~/pose', reliable)
        self.pub_pose_cov = node.create_publisher(PoseWithCovarianceStamped,
                                                  '~/pose_with_covariance', reliable)
        self.pub_fix = node.create_publisher(NavSatFix, '~/fix', reliable)
        # every localized frame's own pose (the node's pose is the tracker's when it tracks)
        self.pub_frame = node.create_publisher(PoseWithCovarianceStamped,
                                               '~/frame/pose_with_covariance', reliable)
        self.pub_tf = node.create_publisher(TFMessage, '/tf', QoSProfile(
            depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self._lock = threading.Lock()
        self.map_to_odom: tuple[float, float, float] | None = None   # latest correction
        self._image_stamp_ns: int | None = None
        self._sent_ns: int | None = None               # stamp of the last map -> odom sent
        self.tf_sent = 0
        rate = node.params.tf_rate_hz
        self.timer = None if rate <= 0 else node.create_timer(
            1.0 / rate, self.republish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ------------------------------------------------------------------ state
    def note_image(self, stamp_ns: int) -> None:
        """Remember the newest image stamp (map -> odom is dated from it at least)."""
        with self._lock:
            self._image_stamp_ns = stamp_ns

    def reset(self) -> None:
        """Forget the correction (the clock went back: the odometry it came from is void)."""
        with self._lock:
            self.map_to_odom = None
            self._sent_ns = None

    def values(self) -> dict:
        with self._lock:
            c = self.map_to_odom
            return {'tf_sent': self.tf_sent,
                    'map_to_odom': '' if c is None else
                    f'{c[0]:.3f} {c[1]:.3f} m {c[2]:.4f} rad'}

    # ------------------------------------------------------------------ publishing
    def publish(self, stamp, *, x_m: float, y_m: float, yaw_rad: float, covariance,
                lat_deg: float, lon_deg: float,
                map_to_odom: tuple[float, float, float] | None) -> None:
        """Publish one localized frame: base_link in the map at ``stamp`` (the image's).

        ``covariance``: (x, y, yaw) 3x3; ``map_to_odom``: the correction (x, y, yaw) from
        odometry at the image stamp, or None without odometry (then the debug frame).
        """
        from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, TransformStamped
        from sensor_msgs.msg import NavSatFix
        from tf2_msgs.msg import TFMessage

        from ciper_ros.rosmsg.convert import (
            fill_fix_estimate,
            fill_pose,
            fill_transform,
            pose_covariance_6x6,
        )

        p = self.node.params
        x, y = float(x_m), float(y_m)
        ps = PoseStamped()
        ps.header.stamp, ps.header.frame_id = stamp, p.map_frame
        fill_pose(ps.pose, x, y, yaw_rad)
        pc = PoseWithCovarianceStamped()
        pc.header = ps.header
        pc.pose.pose = ps.pose
        pc.pose.covariance = pose_covariance_6x6(covariance)
        fix = fill_fix_estimate(NavSatFix(), lat_deg, lon_deg, covariance)
        fix.header.stamp, fix.header.frame_id = stamp, p.base_frame
        self.pub_pose.publish(ps)
        self.pub_pose_cov.publish(pc)
        self.pub_fix.publish(fix)
        if map_to_odom is not None:
            with self._lock:
                self.map_to_odom = tuple(float(v) for v in map_to_odom)
        if not p.publish_tf:
            return
        if map_to_odom is None:               # debug frame: where we think base_link is
            tf = TransformStamped()
            tf.header.stamp, tf.header.frame_id = stamp, p.map_frame
            tf.child_frame_id = p.debug_child_frame
            fill_transform(tf, x, y, yaw_rad)
            self.pub_tf.publish(TFMessage(transforms=[tf]))
            with self._lock:
                self.tf_sent += 1
        else:
            self.republish()

    def publish_frame(self, stamp, *, x_m: float, y_m: float, yaw_rad: float,
                      covariance) -> None:
        """One localized frame's own pose (base_link in the map, at the image's stamp)."""
        from geometry_msgs.msg import PoseWithCovarianceStamped

        from ciper_ros.rosmsg.convert import fill_pose, pose_covariance_6x6

        pc = PoseWithCovarianceStamped()
        pc.header.stamp, pc.header.frame_id = stamp, self.node.params.map_frame
        fill_pose(pc.pose.pose, float(x_m), float(y_m), yaw_rad)
        pc.pose.covariance = pose_covariance_6x6(covariance)
        self.pub_frame.publish(pc)

    def republish(self) -> None:
        """Send the latest map -> odom, future-dated (the timer's and each frame's)."""
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        from ciper_ros.rosmsg.convert import fill_transform

        p = self.node.params
        if not p.publish_tf:
            return
        now_ns = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self.map_to_odom is None:
                return
            base = max(now_ns, self._image_stamp_ns or 0)
            stamp_ns = base + int(round(p.transform_tolerance * 1e9))
            last = self._sent_ns
            if last is not None and last - TIME_JUMP_BACK_S * 1e9 < stamp_ns <= last:
                return                         # not newer (sim time paused): tf2 would warn
            self._sent_ns = stamp_ns
            correction = self.map_to_odom
            self.tf_sent += 1
            tf = TransformStamped()
            tf.header.stamp.sec, tf.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
            tf.header.frame_id, tf.child_frame_id = p.map_frame, p.odom_frame
            fill_transform(tf, *correction)
            # published under the lock: stamps leave in the order they were chosen
            self.pub_tf.publish(TFMessage(transforms=[tf]))

    def flush(self, timeout_s: float) -> None:
        """Wait until subscribers acknowledged what was published (before the node ends)."""
        from rclpy.duration import Duration

        for pub in (self.pub_pose, self.pub_pose_cov, self.pub_fix, self.pub_frame,
                    self.pub_tf):
            pub.wait_for_all_acked(Duration(seconds=timeout_s))
