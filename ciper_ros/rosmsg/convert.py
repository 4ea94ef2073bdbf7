"""Conversions between ROS messages and numpy, without importing rclpy.

Functions take and fill message objects by attribute (rclpy's generated classes and the
rosbags ones have the same field names), so they serve the node, bag replay and tests.

* images: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8, mono16, any row padding in
  ``step``, either endianness) and sensor_msgs/CompressedImage (jpeg, png; the channel
  order image_transport's compressed plugin writes in ``format``) <-> RGB uint8; degenerate
  sizes (a side under MIN_IMAGE_SIDE_PX, an aspect beyond MAX_IMAGE_ASPECT) are refused
* sensor_msgs/CameraInfo -> :class:`~ciper_ros.geo.camera.PinholeCamera`
* poses: the 6x6 row-major covariance of PoseWithCovariance from our (x, y, yaw) 3x3, with
  the axes we do not estimate (z, roll, pitch) set to a large variance; and back, for a
  pose someone sends us (``/initialpose`` from RViz's "2D Pose Estimate")
"""

from __future__ import annotations

import math

import numpy as np

from ciper_ros.geo.camera import PinholeCamera
from ciper_ros.util.errors import UserError

ENCODINGS = {'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4),
             'bgra8': (np.uint8, 4), 'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1)}
UNUSED_VARIANCE = 1e6            # z, roll, pitch: "not estimated" for robot_localization
PLANAR_AXES = [0, 1, 5]          # x, y, yaw in (x, y, z, roll, pitch, yaw)
# no camera we localize makes smaller images or longer strips (a 360 degree panorama is 4:1
# to 8:1); a 100000x1 image is a broken driver, and OpenCV asserts on some such sizes
MIN_IMAGE_SIDE_PX = 4
MAX_IMAGE_ASPECT = 20.0
MAX_IMAGE_SIDE_PX = 20000
COMPRESSED_CODECS = ('jpeg', 'jpg', 'png')


class MessageError(UserError):
    """A message that cannot be converted (one clear line: what is wrong with it)."""


def check_image_size(width: int, height: int) -> None:
    """Raise MessageError for an image no camera makes (empty, tiny, a strip, huge)."""
    if width <= 0 or height <= 0:
        raise MessageError(f'image has zero size ({width}x{height})')
    short, long = min(width, height), max(width, height)
    if short < MIN_IMAGE_SIDE_PX or long > MAX_IMAGE_SIDE_PX or long / short > MAX_IMAGE_ASPECT:
        raise MessageError(f'image is {width}x{height} px: degenerate (sides must be '
                           f'{MIN_IMAGE_SIDE_PX}..{MAX_IMAGE_SIDE_PX} px, the aspect at most '
                           f'{MAX_IMAGE_ASPECT:g}:1)')


def image_to_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a sensor_msgs/Image."""
    enc = str(msg.encoding).lower()
    if enc not in ENCODINGS:
        raise MessageError(f'unsupported image encoding {msg.encoding!r}; supported: '
                           f'{", ".join(ENCODINGS)}')
    dtype, channels = ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    check_image_size(w, h)
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    data = bytes(msg.data)
    if step < row or step > 16 * row + 4096:
        raise MessageError(f'image step {step} is impossible for {w} px of {enc} '
                           f'({row} bytes a row)')
    if len(data) < step * (h - 1) + row:
        raise MessageError(f'image data is {len(data)} bytes, {w}x{h} {enc} with step {step} '
                           f'needs {step * (h - 1) + row}')
    rows = np.frombuffer(data, np.uint8, count=step * (h - 1) + row)
    rows = np.lib.stride_tricks.as_strided(rows, shape=(h, row), strides=(step, 1))
    px = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(
        '>' if getattr(msg, 'is_bigendian', 0) else '<')).reshape(h, w, channels)
    if dtype == np.uint16:
        px = (px.astype(np.uint32) >> 8).astype(np.uint8)        # 16-bit grey -> 8-bit
    if enc.startswith('bgr'):
        px = px[..., [2, 1, 0] + ([3] if channels == 4 else [])]
    if channels == 1:
        px = np.repeat(px, 3, axis=2)
    return np.ascontiguousarray(px[..., :3], dtype=np.uint8)


def compressed_channel_order(fmt: str) -> tuple[str, str]:
    """(codec, channel order of the compressed data: 'bgr' or 'rgb') of a ``format`` string.

    Plain ``jpeg`` / ``png`` is what OpenCV writes (BGR). image_transport's compressed plugin
    writes ``'<encoding>; <codec> compressed <encoding of the data>'``, e.g. ``'rgb8; jpeg
    compressed bgr8'`` (the usual: it converts colour to bgr8 first) or ``'rgb8; jpeg
    compressed rgb8'`` (the data's channels are R, G, B: OpenCV's "B" is red).
    """
    f = str(fmt).strip().lower()
    order = 'bgr'
    if ';' in f:
        words = f.split(';', 1)[1].split()
        codec = words[0] if words else ''
        if 'compressed' in words and words[-1] != 'compressed' and words[-1].startswith('rgb'):
            order = 'rgb'
    else:
        codec = f
    if codec not in COMPRESSED_CODECS + ('',):
        raise MessageError(f'unsupported compressed image format {fmt!r} (jpeg or png, as '
                           "image_transport's compressed plugin writes them)")
    return codec, order


def compressed_to_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a sensor_msgs/CompressedImage (jpeg or png, either order)."""
    import cv2

    _, order = compressed_channel_order(msg.format)
    data = np.frombuffer(bytes(msg.data), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if len(data) else None
    if img is None:
        raise MessageError(f'compressed image ({msg.format!r}, {len(data)} bytes) does not '
                           'decode')
    check_image_size(int(img.shape[1]), int(img.shape[0]))
    # OpenCV returns the channels in the order they were stored, calling them B, G, R
    return np.ascontiguousarray(img if order == 'rgb' else img[..., ::-1])


def to_rgb(msg, msgtype: str | None = None) -> np.ndarray:
    """Either image message: CompressedImage has ``format``, Image has ``encoding``."""
    compressed = (msgtype or '').endswith('CompressedImage') or (
        msgtype is None and hasattr(msg, 'format') and not hasattr(msg, 'encoding'))
    return compressed_to_rgb(msg) if compressed else image_to_rgb(msg)


def fill_image(msg, rgb: np.ndarray, *, encoding: str = 'rgb8'):
    """Fill a sensor_msgs/Image from (H, W, 3) RGB uint8 (rgb8, bgr8 or mono8)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MessageError(f'expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
    if encoding == 'rgb8':
        px = rgb
    elif encoding == 'bgr8':
        px = rgb[..., ::-1]
    elif encoding == 'mono8':
        px = rgb.mean(axis=2).round().astype(np.uint8)[..., None]
    else:
        raise MessageError(f'cannot encode {encoding!r} (rgb8, bgr8, mono8)')
    px = np.ascontiguousarray(px)
    msg.height, msg.width = int(px.shape[0]), int(px.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(px.shape[1] * px.shape[2])
    msg.data = px.tobytes()
    return msg


def fill_compressed(msg, rgb: np.ndarray, *, fmt: str = 'jpeg', quality: int = 90,
                    data_encoding: str | None = None):
    """Fill a sensor_msgs/CompressedImage from (H, W, 3) RGB uint8.

    ``data_encoding`` None writes the plain ``format`` ('jpeg' / 'png', BGR data as OpenCV
    writes it); 'bgr8' or 'rgb8' writes image_transport's ``'rgb8; <codec> compressed
    <data_encoding>'`` with the data's channels in that order.
    """
    import cv2

    ext = {'jpeg': '.jpg', 'jpg': '.jpg', 'png': '.png'}.get(fmt)
    if ext is None:
        raise MessageError(f'cannot compress to {fmt!r} (jpeg, png)')
    if data_encoding not in (None, 'bgr8', 'rgb8'):
        raise MessageError(f'cannot store compressed data as {data_encoding!r} (bgr8, rgb8)')
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == '.jpg' else []
    px = rgb if data_encoding == 'rgb8' else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(ext, px, params)
    if not ok:
        raise MessageError('image encoding failed')
    codec = 'jpeg' if ext == '.jpg' else 'png'
    msg.format = codec if data_encoding is None else f'rgb8; {codec} compressed {data_encoding}'
    msg.data = buf.tobytes()
    return msg


def camera_info_to_camera(msg) -> PinholeCamera:
    """Intrinsics from sensor_msgs/CameraInfo (its K; distortion is not modelled here)."""
    K = np.asarray(msg.k if hasattr(msg, 'k') else msg.K, np.float64)
    if K.size != 9 or not np.all(np.isfinite(K)) or K[0] <= 0 or K[4] <= 0:
        raise MessageError(f'CameraInfo K is not a valid camera matrix: {K.tolist()}')
    try:
        return PinholeCamera(int(msg.width), int(msg.height), float(K[0]), float(K[4]),
                             float(K[2]), float(K[5]))
    except ValueError as e:
        raise MessageError(f'CameraInfo: {e}') from None


def pose_covariance_6x6(cov_xyyaw: np.ndarray) -> list[float]:
    """Row-major 6x6 (x, y, z, roll, pitch, yaw) from our 3x3 (x, y, yaw) covariance."""
    c = np.asarray(cov_xyyaw, np.float64)
    if c.shape != (3, 3) or not np.all(np.isfinite(c)):
        raise MessageError(f'covariance must be a finite 3x3, got {c.shape}')
    out = np.zeros((6, 6))
    out[np.ix_(PLANAR_AXES, PLANAR_AXES)] = c
    for i in (2, 3, 4):
        out[i, i] = UNUSED_VARIANCE
    return out.ravel().tolist()


def fill_pose(pose, x_m: float, y_m: float, yaw_rad: float, z_m: float = 0.0):
    """Fill a geometry_msgs/Pose with a planar pose (yaw about +z)."""
    pose.position.x, pose.position.y, pose.position.z = float(x_m), float(y_m), float(z_m)
    pose.orientation.x = pose.orientation.y = 0.0
    pose.orientation.z = math.sin(yaw_rad / 2.0)
    pose.orientation.w = math.cos(yaw_rad / 2.0)
    return pose


def fill_fix_estimate(fix, lat_deg: float, lon_deg: float, cov_xyyaw: np.ndarray):
    """Fill a sensor_msgs/NavSatFix with an estimate: status FIX, ENU covariance KNOWN.

    The altitude is not estimated: NaN, with the large variance on up.
    """
    c = np.asarray(cov_xyyaw, np.float64)
    fix.status.status, fix.status.service = 0, 0          # STATUS_FIX, no GNSS service
    fix.latitude, fix.longitude, fix.altitude = float(lat_deg), float(lon_deg), math.nan
    fix.position_covariance = [float(c[0, 0]), float(c[0, 1]), 0.0,
                               float(c[1, 0]), float(c[1, 1]), 0.0, 0.0, 0.0, UNUSED_VARIANCE]
    fix.position_covariance_type = 3                       # COVARIANCE_TYPE_KNOWN
    return fix


def fill_transform(tf, x_m: float, y_m: float, yaw_rad: float):
    """Fill a geometry_msgs/TransformStamped's transform with a planar one."""
    t, q = tf.transform.translation, tf.transform.rotation
    t.x, t.y, t.z = float(x_m), float(y_m), 0.0
    q.x = q.y = 0.0
    q.z, q.w = math.sin(yaw_rad / 2.0), math.cos(yaw_rad / 2.0)
    return tf


def yaw_of(q) -> float:
    """Yaw (rad) of a geometry_msgs/Quaternion."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


# RViz's "2D Pose Estimate" sends 0.5 m and about 15 deg standard deviations; a tool that
# sends zeros means "exactly here", which a filter cannot start from: floor at these
MIN_POSE_SIGMA_M = 0.1
MIN_POSE_SIGMA_RAD = math.radians(1.0)


def planar_pose_of(msg) -> tuple[np.ndarray, float, np.ndarray]:
    """(xy_m (2,), yaw_rad, covariance (3, 3) over x, y, yaw) of a PoseWithCovariance(Stamped).

    The inverse of :func:`fill_pose` + :func:`pose_covariance_6x6`. Raises MessageError for
    non-finite values, a quaternion far from unit length, or a covariance that is not a
    symmetric positive semi-definite matrix; variances are floored at MIN_POSE_SIGMA_*.
    """
    pwc = msg.pose if hasattr(msg, 'header') else msg
    p, q = pwc.pose.position, pwc.pose.orientation
    values = np.array([p.x, p.y, q.x, q.y, q.z, q.w], np.float64)
    if not np.all(np.isfinite(values)):
        raise MessageError(f'pose has non-finite values: {values.tolist()}')
    norm = float(np.linalg.norm(values[2:]))
    if abs(norm - 1.0) > 0.01:
        raise MessageError(f'pose orientation is not a unit quaternion (norm {norm:.3f})')
    c6 = np.asarray(pwc.covariance, np.float64)
    if c6.size != 36 or not np.all(np.isfinite(c6)):
        raise MessageError(f'pose covariance must be 36 finite numbers, got {c6.size}')
    cov = c6.reshape(6, 6)[np.ix_(PLANAR_AXES, PLANAR_AXES)].copy()
    if not np.allclose(cov, cov.T, atol=1e-9) or np.linalg.eigvalsh(cov).min() < -1e-9:
        raise MessageError('pose covariance (x, y, yaw) is not symmetric positive '
                           f'semi-definite: {cov.tolist()}')
    floor = np.array([MIN_POSE_SIGMA_M, MIN_POSE_SIGMA_M, MIN_POSE_SIGMA_RAD]) ** 2
    cov[np.diag_indices(3)] = np.maximum(np.diag(cov), floor)
    return values[:2].copy(), yaw_of(q), cov
