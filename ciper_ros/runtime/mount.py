"""Planar frames: the camera's mount on the vehicle and camera pose -> base_link pose.

The Localizer finds where the *camera* is and which way it looks (east/north metres and yaw
in the index's ENU frame). Consumers want ``base_link``: this module takes the static
transform base_link -> camera (from ``/tf_static``, composed along a chain of static
frames, or from node parameters) down to the plane and moves pose and covariance through it.

No rclpy: functions read TFMessage objects by attribute (rclpy and rosbags alike).

Camera frames follow REP-103/REP-105: a frame whose name contains ``optical`` looks along
+z (x right, y down); any other camera frame looks along +x.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ciper_ros.geo.se2 import SE2
from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class Mount:
    """base_link -> camera in the ground plane: offset (m) and the camera's yaw (rad)."""

    x_m: float = 0.0
    y_m: float = 0.0
    yaw_rad: float = 0.0
    source: str = 'parameters'       # or 'tf_static: base_link -> ... -> camera'

    @property
    def T_base_camera(self) -> SE2:
        return SE2(self.x_m, self.y_m, self.yaw_rad, parent='base_link', child='camera')


def tf_edges(msg) -> list[tuple[str, str, np.ndarray]]:
    """[(parent, child, T_parent_child 4x4), ...] of a tf2_msgs/TFMessage."""
    out = []
    for tf in msg.transforms:
        t, q = tf.transform.translation, tf.transform.rotation
        out.append((str(tf.header.frame_id).lstrip('/'), str(tf.child_frame_id).lstrip('/'),
                    _matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))))
    return out


def _matrix(xyz, q_xyzw) -> np.ndarray:
    x, y, z, w = (float(v) for v in q_xyzw)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-9 or not all(math.isfinite(float(v)) for v in xyz):
        raise UserError(f'transform is not finite / its quaternion is zero: {xyz} {q_xyzw}')
    x, y, z, w = x / n, y / n, z / n, w / n
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = [float(v) for v in xyz]
    return T


def mount_from_edges(edges, *, base_frame: str, camera_frame: str) -> Mount | None:
    """Compose the planar mount of ``camera_frame`` on ``base_frame`` from static TF edges.

    Walks child -> parent from the camera up to the base (a tree, as TF requires); None when
    the chain does not reach ``base_frame``.
    """
    parent_of = {child: (parent, T) for parent, child, T in edges}
    T = np.eye(4)
    frame, chain = camera_frame.lstrip('/'), [camera_frame.lstrip('/')]
    while frame != base_frame:
        if frame not in parent_of or len(chain) > 32:
            return None
        parent, T_pc = parent_of[frame]
        T = T_pc @ T
        frame = parent
        chain.append(frame)
    forward = T[:3, 2] if 'optical' in camera_frame else T[:3, 0]
    if math.hypot(forward[0], forward[1]) < 1e-6:
        raise UserError(f'camera frame {camera_frame!r} looks straight up or down in '
                         f'{base_frame!r}: no heading to localize')
    return Mount(float(T[0, 3]), float(T[1, 3]), math.atan2(forward[1], forward[0]),
                 source='tf_static: ' + ' -> '.join(reversed(chain)))


def mount_or_default(edges, *, base_frame: str, camera_frame: str,
                     default: Mount) -> tuple[Mount, str]:
    """Pick the node's mount: the static TF chain to ``camera_frame``, else ``default``.

    Returns the mount and the reason a chain was refused ('' if none).
    """
    try:
        mount = mount_from_edges(edges, base_frame=base_frame,
                                 camera_frame=camera_frame) if camera_frame else None
    except ValueError as e:
        return default, str(e)
    return mount or default, ''


def base_from_camera(xy_m: np.ndarray, yaw_rad: float, cov: np.ndarray,
                     mount: Mount) -> tuple[np.ndarray, float, np.ndarray]:
    """base_link pose and (x, y, yaw) covariance from the camera's, through the mount.

    ``T_map_base = T_map_camera @ T_base_camera.inv()``. The covariance is propagated to
    first order, so heading uncertainty grows the position uncertainty by the lever arm of
    the offset.
    """
    T_map_cam = SE2(float(xy_m[0]), float(xy_m[1]), float(yaw_rad), parent='map',
                    child='camera')
    T_map_base = T_map_cam @ mount.T_base_camera.inv()
    off = T_map_cam.xy_m - T_map_base.xy_m                  # R(yaw_base) @ mount offset
    J = np.eye(3)
    J[0, 2], J[1, 2] = off[1], -off[0]          # d(xy_b)/d(yaw) = -d(R off)/d(yaw)
    cov_b = J @ np.asarray(cov, np.float64) @ J.T
    return T_map_base.xy_m, T_map_base.yaw_rad, cov_b


def camera_from_base(xy_m: np.ndarray, yaw_rad: float, mount: Mount) -> tuple[np.ndarray,
                                                                               float]:
    """Invert :func:`base_from_camera` for the pose (truth, tests)."""
    T_map_base = SE2(float(xy_m[0]), float(xy_m[1]), float(yaw_rad), parent='map',
                     child='base_link')
    T_map_cam = T_map_base @ mount.T_base_camera
    return T_map_cam.xy_m, T_map_cam.yaw_rad
