"""Buffers of the non-image inputs, looked up at an image's stamp (no rclpy, thread-safe).

The node fills them from its subscriptions, the bag tools from the recording, and
:class:`~ciper_ros.runtime.pipeline.FramePipeline` reads them for each frame, so online and
offline runs pick the same CameraInfo, odometry and camera mount for the same frame.

* :class:`CameraInfoBuffer`: intrinsics matched to an image by stamp, never by arrival
  order: the CameraInfo with the image's stamp, else the latest one no newer than the
  image plus ``tolerance_s``.
* :class:`OdometryBuffer`: odom -> base_link interpolated at the image stamp (SE(2),
  between messages at most ``max_gap_s`` apart; else the nearest within ``tolerance_s``).
* :class:`StaticTransforms`: ``/tf_static`` edges and the camera mount they give per camera
  frame (else the parameter mount).
"""

from __future__ import annotations

from bisect import bisect_right
import threading

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.geo.heading import wrap_angle_rad
from ciper_ros.geo.se2 import SE2
from ciper_ros.runtime.mount import Mount, mount_or_default
from ciper_ros.runtime.stamped import StampedBuffer


class CameraInfoBuffer(StampedBuffer):
    """Camera intrinsics by stamp."""

    def __init__(self, *, tolerance_s: float = 0.02, horizon_s: float = 10.0) -> None:
        super().__init__(horizon_s=horizon_s)
        self.tolerance_ns = int(tolerance_s * 1e9)

    def add(self, stamp_ns: int, camera: PinholeCamera) -> None:
        self._add(stamp_ns, camera)

    def has_exact(self, stamp_ns: int) -> bool:
        with self._lock:
            return stamp_ns in self._v

    def at(self, stamp_ns: int) -> tuple[PinholeCamera | None, str]:
        """(camera, '') for an image stamp, or (None, why)."""
        with self._lock:
            if stamp_ns in self._v:
                return self._v[stamp_ns], ''
            k = bisect_right(self._t, stamp_ns + self.tolerance_ns) - 1
            if k >= 0:
                return self._v[self._t[k]], ''
            n = len(self._t)
        if n:
            return None, ('no CameraInfo at or before the image stamp (the oldest buffered is '
                          'newer than the image)')
        return None, 'no CameraInfo received'


class OdometryBuffer(StampedBuffer):
    """T_odom_base (SE(2)) by stamp, interpolated at image stamps."""

    def __init__(self, *, max_gap_s: float = 0.5, tolerance_s: float = 0.05,
                 horizon_s: float = 20.0) -> None:
        super().__init__(horizon_s=horizon_s)
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.tolerance_ns = int(tolerance_s * 1e9)

    def add(self, stamp_ns: int, T_odom_base: SE2) -> None:
        self._add(stamp_ns, T_odom_base)

    def at(self, stamp_ns: int) -> SE2 | None:
        """T_odom_base at ``stamp_ns``: interpolated, else the nearest close one, else None."""
        with self._lock:
            k = bisect_right(self._t, stamp_ns)
            before = (self._t[k - 1], self._v[self._t[k - 1]]) if k > 0 else None
            after = (self._t[k], self._v[self._t[k]]) if k < len(self._t) else None
        if before and after and after[0] - before[0] <= self.max_gap_ns:
            (ta, a), (tb, b) = before, after
            w = (stamp_ns - ta) / (tb - ta)
            # position linearly in the odom frame, heading along the shortest arc
            dyaw = wrap_angle_rad(b.yaw_rad - a.yaw_rad)
            return SE2(a.x_m + w * (b.x_m - a.x_m), a.y_m + w * (b.y_m - a.y_m),
                       a.yaw_rad + w * dyaw, parent=a.parent, child=a.child)
        near = [o for o in (before, after) if o is not None]
        if near:
            t, T = min(near, key=lambda o: abs(o[0] - stamp_ns))
            if abs(t - stamp_ns) <= self.tolerance_ns:
                return T
        return None


class StaticTransforms:
    """``/tf_static`` edges and the planar camera mount of each camera frame."""

    def __init__(self, *, base_frame: str, default: Mount) -> None:
        self.base_frame = base_frame
        self.default = default
        self._lock = threading.Lock()
        self._edges: dict[str, tuple] = {}
        self._mounts: dict[str, Mount] = {}
        self.last_error = ''

    def add(self, edges) -> None:
        """Add (parent, child, T 4x4) edges (``runtime.mount.tf_edges`` of a TFMessage)."""
        with self._lock:
            for parent, child, T in edges:
                self._edges[child] = (parent, child, T)
            self._mounts.clear()

    def __len__(self) -> int:
        return len(self._edges)

    def mount(self, camera_frame: str) -> Mount:
        with self._lock:
            if camera_frame in self._mounts:
                return self._mounts[camera_frame]
            edges = list(self._edges.values())
        mount, why = mount_or_default(edges, base_frame=self.base_frame,
                                      camera_frame=camera_frame, default=self.default)
        with self._lock:
            if why:
                self.last_error = why
            self._mounts[camera_frame] = mount
        return mount

    def mounts(self) -> dict[str, Mount]:
        with self._lock:
            return dict(self._mounts)
