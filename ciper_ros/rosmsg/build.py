"""Build ROS messages as ``rosbags`` objects (no rclpy needed) and serialise them to CDR.

One typestore (ROS 2 Kilted definitions, the same wire format as Humble and Jazzy for
these types) is shared by the writers and readers of this package.
"""

from __future__ import annotations

from functools import lru_cache
import math

import cv2
import numpy as np
from rosbags.typesys import get_typestore, Stores

from ciper_ros.util.errors import UserError

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
NAVSATFIX = 'sensor_msgs/msg/NavSatFix'
ODOMETRY = 'nav_msgs/msg/Odometry'
POSE_STAMPED = 'geometry_msgs/msg/PoseStamped'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'


@lru_cache(maxsize=1)
def typestore():
    return get_typestore(Stores.ROS2_KILTED)


def _t(name: str):
    return typestore().types[name]


def serialize(msg) -> bytes:
    return bytes(typestore().serialize_cdr(msg, msg.__msgtype__))


def deserialize(data: bytes, typename: str):
    return typestore().deserialize_cdr(data, typename)


def stamp(t_ns: int):
    return _t('builtin_interfaces/msg/Time')(sec=int(t_ns // 1_000_000_000),
                                              nanosec=int(t_ns % 1_000_000_000))


def header(t_ns: int, frame_id: str):
    return _t('std_msgs/msg/Header')(stamp=stamp(t_ns), frame_id=frame_id)


def quaternion_from_yaw(yaw_rad: float):
    return _t('geometry_msgs/msg/Quaternion')(x=0.0, y=0.0, z=math.sin(yaw_rad / 2),
                                              w=math.cos(yaw_rad / 2))


def quaternion(xyzw) -> object:
    x, y, z, w = (float(v) for v in xyzw)
    return _t('geometry_msgs/msg/Quaternion')(x=x, y=y, z=z, w=w)


def pose(x: float, y: float, z: float, q):
    return _t('geometry_msgs/msg/Pose')(
        position=_t('geometry_msgs/msg/Point')(x=float(x), y=float(y), z=float(z)),
        orientation=q)


def image_raw(t_ns: int, frame_id: str, rgb: np.ndarray):
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return _t(IMAGE)(header=header(t_ns, frame_id), height=h, width=w, encoding='rgb8',
                     is_bigendian=0, step=w * 3, data=rgb.reshape(-1))


def image_compressed(t_ns: int, frame_id: str, rgb: np.ndarray, *, quality: int = 90):
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise UserError('JPEG encoding failed')
    return _t(COMPRESSED_IMAGE)(header=header(t_ns, frame_id), format='jpeg',
                                data=buf.reshape(-1))


def camera_info(t_ns: int, frame_id: str, camera) -> object:
    K = camera.K
    P = np.concatenate([K, np.zeros((3, 1))], axis=1)
    roi = _t('sensor_msgs/msg/RegionOfInterest')(x_offset=0, y_offset=0, height=0, width=0,
                                                 do_rectify=False)
    return _t(CAMERA_INFO)(header=header(t_ns, frame_id), height=camera.height,
                           width=camera.width, distortion_model='plumb_bob',
                           d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1),
                           p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def navsatfix(t_ns: int, frame_id: str, lat_deg: float, lon_deg: float, alt_m: float, *,
              status: int, sigma_m: float | None):
    """``status``: -1 NO_FIX, 0 FIX, 1 SBAS_FIX, 2 GBAS_FIX; ``sigma_m`` None = unknown."""
    st = _t('sensor_msgs/msg/NavSatStatus')(status=int(status), service=1)  # GPS
    cov = np.zeros(9)
    if sigma_m is None:
        cov_type = 0
    else:
        cov[0] = cov[4] = sigma_m ** 2
        cov[8] = (2.0 * sigma_m) ** 2
        cov_type = 2  # DIAGONAL_KNOWN
    return _t(NAVSATFIX)(header=header(t_ns, frame_id), status=st, latitude=float(lat_deg),
                         longitude=float(lon_deg), altitude=float(alt_m),
                         position_covariance=cov, position_covariance_type=cov_type)


def odometry(t_ns: int, x: float, y: float, yaw: float, v: float, yaw_rate: float, *,
             frame_id: str = 'odom', child_frame_id: str = 'base_link',
             pose_var: tuple[float, float] = (0.05, 0.01),
             twist_var: tuple[float, float] = (0.01, 0.001)):
    pc = np.zeros(36)
    pc[0] = pc[7] = pose_var[0]
    pc[14] = pc[21] = pc[28] = 1e6  # z, roll, pitch not estimated (2-D odometry)
    pc[35] = pose_var[1]
    tc = np.zeros(36)
    tc[0] = twist_var[0]
    tc[7] = tc[14] = tc[21] = tc[28] = 1e6
    tc[35] = twist_var[1]
    vec3 = _t('geometry_msgs/msg/Vector3')
    twist = _t('geometry_msgs/msg/Twist')(linear=vec3(x=float(v), y=0.0, z=0.0),
                                          angular=vec3(x=0.0, y=0.0, z=float(yaw_rate)))
    return _t(ODOMETRY)(
        header=header(t_ns, frame_id), child_frame_id=child_frame_id,
        pose=_t('geometry_msgs/msg/PoseWithCovariance')(
            pose=pose(x, y, 0.0, quaternion_from_yaw(yaw)), covariance=pc),
        twist=_t('geometry_msgs/msg/TwistWithCovariance')(twist=twist, covariance=tc))


def pose_stamped(t_ns: int, frame_id: str, x: float, y: float, z: float, yaw: float):
    return _t(POSE_STAMPED)(header=header(t_ns, frame_id),
                            pose=pose(x, y, z, quaternion_from_yaw(yaw)))


def tf_message(transforms: list[tuple[int, str, str, tuple, tuple]]):
    """[(t_ns, parent, child, (x, y, z), (qx, qy, qz, qw)), ...] -> TFMessage."""
    vec3 = _t('geometry_msgs/msg/Vector3')
    out = []
    for t_ns, parent, child, xyz, q in transforms:
        out.append(_t('geometry_msgs/msg/TransformStamped')(
            header=header(t_ns, parent), child_frame_id=child,
            transform=_t('geometry_msgs/msg/Transform')(
                translation=vec3(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
                rotation=quaternion(q))))
    return _t(TF_MESSAGE)(transforms=out)
