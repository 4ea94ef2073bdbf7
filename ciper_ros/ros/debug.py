"""The localize node's debug view: ``~/debug/image`` and ``~/debug/markers`` (RViz).

Both are made only while someone subscribes (rendering costs a map crop and drawing).

* ``~/debug/image`` (sensor_msgs/Image, rgb8): the aerial map around the estimate with
  the tracked pose, the frame's pose, every decoded tile's hypothesis, the particles and
  the GNSS fix drawn on it (:mod:`ciper_ros.runtime.debug_view`); stamped with the image's
  stamp, frame ``map_frame``.
* ``~/debug/markers`` (visualization_msgs/MarkerArray) in ``map_frame``: namespaces
  ``tracked`` and ``frame`` (an arrow and the 95 % ellipse each), ``hypotheses`` (arrows,
  the best first, more opaque with more weight), ``particles`` (points) and ``gnss`` (the
  fix and its 95 % circle). Each array starts with DELETEALL, so nothing stale stays.
"""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.9


class DebugOutputs:
    def __init__(self, node) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        self.node = node
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = node.create_publisher(Image, '~/debug/image', qos)
        self.pub_markers = node.create_publisher(MarkerArray, '~/debug/markers', qos)
        self.images_sent = self.markers_sent = 0

    @property
    def wanted(self) -> bool:
        return (self.pub_image.get_subscription_count() > 0
                or self.pub_markers.get_subscription_count() > 0)

    def publish(self, stamp, rec) -> None:
        """Publish the debug view of one processed frame (``stamp``: its header stamp)."""
        if not self.wanted:
            return
        p = self.node.params
        scene = self.node.pipeline.debug_scene(rec)
        if self.pub_image.get_subscription_count() > 0:
            from sensor_msgs.msg import Image

            from ciper_ros.rosmsg.convert import fill_image
            from ciper_ros.runtime.debug_view import render_debug_image

            loc = self.node.pipeline.localizer
            rgb = render_debug_image(scene, store=loc.store, plane=loc.index.plane,
                                     side_m=p.debug_image_side_m, px=p.debug_image_px,
                                     zoom=loc.index.spec.zoom)
            msg = fill_image(Image(), rgb)
            msg.header.stamp, msg.header.frame_id = stamp, p.map_frame
            self.pub_image.publish(msg)
            self.images_sent += 1
        if self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(markers(scene, stamp, p.map_frame))
            self.markers_sent += 1


def _colour(rgb, alpha: float = ALPHA):
    from std_msgs.msg import ColorRGBA

    return ColorRGBA(r=rgb[0] / 255.0, g=rgb[1] / 255.0, b=rgb[2] / 255.0, a=float(alpha))


def _point(x: float, y: float, z: float = 0.0):
    from geometry_msgs.msg import Point

    return Point(x=float(x), y=float(y), z=float(z))


def markers(scene, stamp, frame_id: str):
    """Give a visualization_msgs/MarkerArray of ``scene`` (a DebugScene) in ``frame_id``."""
    from visualization_msgs.msg import Marker, MarkerArray

    from ciper_ros.runtime.debug_view import COLOURS, ellipse_xy_m

    out = MarkerArray()
    clear = Marker()
    clear.header.stamp, clear.header.frame_id = stamp, frame_id
    clear.action = Marker.DELETEALL
    out.markers.append(clear)

    def marker(ns: str, mid: int, kind: int, rgb, alpha: float = ALPHA) -> Marker:
        m = Marker()
        m.header.stamp, m.header.frame_id = stamp, frame_id
        m.ns, m.id, m.type, m.action = ns, mid, kind, Marker.ADD
        m.pose.orientation.w = 1.0
        m.color = _colour(rgb, alpha)
        out.markers.append(m)
        return m

    def arrow(ns: str, mid: int, xy, yaw: float, length_m: float, rgb, alpha=ALPHA) -> None:
        m = marker(ns, mid, Marker.ARROW, rgb, alpha)
        m.points = [_point(*xy), _point(xy[0] + length_m * math.cos(yaw),
                                        xy[1] + length_m * math.sin(yaw))]
        m.scale.x, m.scale.y, m.scale.z = 0.25, 0.5, 0.5     # shaft, head diameters, head

    def ellipse(ns: str, mid: int, xy, cov, rgb) -> None:
        if cov is None or not np.all(np.isfinite(cov)):
            return
        m = marker(ns, mid, Marker.LINE_STRIP, rgb)
        m.points = [_point(x, y) for x, y in ellipse_xy_m(xy, cov)]
        m.scale.x = 0.15

    for ns in ('tracked', 'frame'):
        est = getattr(scene, ns)
        if est is None or not np.all(np.isfinite(est.xy_m)):
            continue
        arrow(ns, 0, est.xy_m, est.yaw_rad, 3.0, COLOURS[ns])
        ellipse(ns, 1, est.xy_m, est.covariance, COLOURS[ns])
    top = max([float(h[3]) for h in scene.hypotheses] or [1.0]) or 1.0
    for i, (xy, yaw, _cov, w) in enumerate(scene.hypotheses):
        arrow('hypotheses', i, xy, float(yaw), 2.0, COLOURS['hypothesis'],
              0.2 + 0.7 * float(w) / top)
    if scene.particles is not None and len(scene.particles):
        m = marker('particles', 0, Marker.POINTS, COLOURS['particle'], 0.6)
        m.points = [_point(x, y) for x, y in scene.particles[:, :2]]
        m.scale.x = m.scale.y = 0.2
    if scene.fix_xy_m is not None and np.all(np.isfinite(scene.fix_xy_m)):
        m = marker('gnss', 0, Marker.SPHERE, COLOURS['gnss'])
        m.pose.position = _point(*scene.fix_xy_m)
        m.scale.x = m.scale.y = m.scale.z = 0.8
        if math.isfinite(scene.fix_sigma_m):
            ellipse('gnss', 1, scene.fix_xy_m, np.eye(2) * scene.fix_sigma_m ** 2,
                    COLOURS['gnss'])
    return out
