"""Message conversions with the real ROS 2 message classes (rclpy's generated Python types)."""

import math

import numpy as np
import pytest

from ciper_ros.rosmsg.convert import (
    camera_info_to_camera,
    compressed_to_rgb,
    fill_compressed,
    fill_fix_estimate,
    fill_image,
    fill_pose,
    fill_transform,
    image_to_rgb,
    MessageError,
    MIN_POSE_SIGMA_M,
    planar_pose_of,
    pose_covariance_6x6,
    to_rgb,
    UNUSED_VARIANCE,
    yaw_of,
)

sensor_msgs = pytest.importorskip('sensor_msgs.msg')
geometry_msgs = pytest.importorskip('geometry_msgs.msg')

RGB = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def raw(encoding: str, pixels: np.ndarray, *, pad: int = 0, bigendian: int = 0):
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1).view(np.uint8)
    if pad:
        row = np.concatenate([row, np.full((h, pad), 7, np.uint8)], axis=1)
    m = sensor_msgs.Image()
    m.height, m.width, m.encoding, m.is_bigendian = h, w, encoding, bigendian
    m.step = row.shape[1]
    m.data = row.tobytes()
    return m


@pytest.mark.parametrize('pad', [0, 3, 64])
def test_every_encoding_with_row_padding(pad):
    rgba = np.concatenate([RGB, np.full((5, 7, 1), 200, np.uint8)], axis=2)
    assert np.array_equal(image_to_rgb(raw('rgb8', RGB, pad=pad)), RGB)
    assert np.array_equal(image_to_rgb(raw('bgr8', RGB[..., ::-1].copy(), pad=pad)), RGB)
    assert np.array_equal(image_to_rgb(raw('rgba8', rgba, pad=pad)), RGB)
    assert np.array_equal(image_to_rgb(raw('bgra8', rgba[..., [2, 1, 0, 3]].copy(),
                                           pad=pad)), RGB)
    grey = RGB[..., 0].copy()
    assert np.array_equal(image_to_rgb(raw('mono8', grey[..., None], pad=pad))[..., 1], grey)
    g16 = (grey.astype(np.uint16) << 8) | 0x55
    little = raw('mono16', g16.astype('<u2')[..., None], pad=pad)
    big = raw('mono16', g16.astype('>u2')[..., None], pad=pad, bigendian=1)
    assert np.array_equal(image_to_rgb(little)[..., 2], grey)
    assert np.array_equal(image_to_rgb(big)[..., 2], grey)


def test_round_trips_and_compressed():
    for enc in ('rgb8', 'bgr8'):
        m = fill_image(sensor_msgs.Image(), RGB, encoding=enc)
        assert np.array_equal(to_rgb(m), RGB)
    mono = image_to_rgb(fill_image(sensor_msgs.Image(), RGB, encoding='mono8'))
    assert np.abs(mono[..., 0].astype(int) - RGB.mean(axis=2)).max() <= 0.5
    png = fill_compressed(sensor_msgs.CompressedImage(), RGB, fmt='png')
    assert png.format == 'png' and np.array_equal(compressed_to_rgb(png), RGB)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (32, 1, 3))
    jpg = fill_compressed(sensor_msgs.CompressedImage(), smooth, fmt='jpeg', quality=95)
    assert np.abs(to_rgb(jpg, 'sensor_msgs/msg/CompressedImage').astype(int)
                  - smooth).mean() < 2.0


@pytest.mark.parametrize('mutate,match', [
    (lambda m: setattr(m, 'encoding', '16UC1'), 'unsupported image encoding'),
    (lambda m: setattr(m, 'data', m.data[:10]), 'needs'),
    (lambda m: (setattr(m, 'width', 0)), 'zero size'),
    (lambda m: setattr(m, 'step', 2), 'impossible'),
    (lambda m: setattr(m, 'step', 10 ** 9), 'impossible'),
])
def test_malformed_images_raise_one_clear_error(mutate, match):
    m = raw('rgb8', RGB)
    mutate(m)
    with pytest.raises(MessageError, match=match):
        image_to_rgb(m)


def test_bad_compressed_and_camera_info():
    bad = sensor_msgs.CompressedImage()
    bad.format, bad.data = 'jpeg', b'\x00\x01'
    with pytest.raises(MessageError, match='does not decode'):
        compressed_to_rgb(bad)
    info = sensor_msgs.CameraInfo()
    info.width, info.height = 640, 480
    info.k = [500.0, 0.0, 319.5, 0.0, 505.0, 239.5, 0.0, 0.0, 1.0]
    cam = camera_info_to_camera(info)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500.0, 505.0, 319.5, 239.5)
    info.k = [0.0] * 9
    with pytest.raises(MessageError, match='not a valid camera matrix'):
        camera_info_to_camera(info)


def test_pose_with_covariance():
    msg = geometry_msgs.PoseWithCovarianceStamped()
    fill_pose(msg.pose.pose, 3.0, -4.0, 2.5)
    assert yaw_of(msg.pose.pose.orientation) == pytest.approx(2.5)
    cov = np.array([[4.0, 0.5, 0.1], [0.5, 9.0, 0.2], [0.1, 0.2, 0.01]])
    msg.pose.covariance = pose_covariance_6x6(cov)
    c6 = np.asarray(msg.pose.covariance).reshape(6, 6)
    assert c6[0, 0] == 4.0 and c6[1, 1] == 9.0 and c6[5, 5] == 0.01 and c6[0, 5] == 0.1
    assert c6[2, 2] == c6[3, 3] == c6[4, 4] == UNUSED_VARIANCE
    assert np.allclose(c6, c6.T)
    with pytest.raises(MessageError, match='finite 3x3'):
        pose_covariance_6x6(np.full((3, 3), math.nan))


def test_planar_pose_of_inverts_fill_pose_and_refuses_bad_poses():
    """/initialpose as RViz sends it: back to (xy, yaw, 3x3); bad ones are MessageErrors."""
    msg = geometry_msgs.PoseWithCovarianceStamped()
    msg.header.frame_id = 'map'
    fill_pose(msg.pose.pose, 12.5, -7.0, -2.0)
    cov = np.array([[0.25, 0.05, 0.0], [0.05, 0.25, 0.01], [0.0, 0.01, 0.0685]])
    msg.pose.covariance = pose_covariance_6x6(cov)
    xy, yaw, c = planar_pose_of(msg)
    assert xy.tolist() == [12.5, -7.0] and yaw == pytest.approx(-2.0)
    assert np.allclose(c, cov)
    assert np.allclose(planar_pose_of(msg.pose)[2], cov)          # unstamped too
    msg.pose.covariance = [0.0] * 36                              # "exactly here"
    assert np.diag(planar_pose_of(msg)[2])[:2] == pytest.approx([MIN_POSE_SIGMA_M ** 2] * 2)
    msg.pose.covariance = pose_covariance_6x6(cov)
    msg.pose.pose.orientation.w = 0.2                             # not a unit quaternion
    with pytest.raises(MessageError, match='unit quaternion'):
        planar_pose_of(msg)
    fill_pose(msg.pose.pose, math.nan, 0.0, 0.0)
    with pytest.raises(MessageError, match='non-finite'):
        planar_pose_of(msg)
    fill_pose(msg.pose.pose, 1.0, 0.0, 0.0)
    msg.pose.covariance = pose_covariance_6x6(np.diag([1.0, -4.0, 0.1]))
    with pytest.raises(MessageError, match='semi-definite'):
        planar_pose_of(msg)


def test_navsatfix_to_prior():
    from ciper_ros.runtime.gnss import navsatfix_to_prior

    fix = sensor_msgs.NavSatFix()
    fix.status.status = 0
    fix.latitude, fix.longitude = 48.1, 11.5
    fix.position_covariance_type = 2
    fix.position_covariance = [9.0, 0, 0, 0, 16.0, 0, 0, 0, 25.0]
    prior, why = navsatfix_to_prior(fix)
    assert why is None and (prior.lat_deg, prior.lon_deg, prior.sigma_m) == (48.1, 11.5, 4.0)
    fix.position_covariance_type = 0
    assert navsatfix_to_prior(fix)[0].sigma_m == 5.0
    fix.status.status = -1
    assert navsatfix_to_prior(fix) == (None, 'GNSS status is STATUS_NO_FIX (-1)')
    fix.status.status = -2
    assert navsatfix_to_prior(fix) == (None, 'GNSS status is STATUS_UNKNOWN (-2)')
    fix.status.status = 0
    fix.latitude = math.nan
    assert 'lat/lon invalid' in navsatfix_to_prior(fix)[1]
    fix.latitude = 48.1
    fix.position_covariance_type = 2
    fix.position_covariance = [math.inf, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    assert 'covariance' in navsatfix_to_prior(fix)[1]


def test_estimate_as_navsatfix_and_a_planar_transform():
    cov = np.array([[4.0, 0.5, 0.01], [0.5, 2.0, 0.0], [0.01, 0.0, 0.003]])
    fix = fill_fix_estimate(sensor_msgs.NavSatFix(), 48.1, 11.5, cov)
    assert fix.status.status == sensor_msgs.NavSatStatus.STATUS_FIX
    assert fix.position_covariance_type == sensor_msgs.NavSatFix.COVARIANCE_TYPE_KNOWN
    c = np.array(fix.position_covariance).reshape(3, 3)
    assert np.allclose(c[:2, :2], cov[:2, :2]) and c[2, 2] == UNUSED_VARIANCE
    assert math.isnan(fix.altitude)
    mo = (12.0, -3.0, 2.9)
    tf = fill_transform(geometry_msgs.TransformStamped(), *mo)
    assert yaw_of(tf.transform.rotation) == pytest.approx(math.remainder(mo[2], 2 * math.pi))
    assert (tf.transform.translation.x, tf.transform.translation.y) == pytest.approx(mo[:2])


@pytest.mark.parametrize('w,h', [(100000, 1), (0, 5), (1, 1), (400, 4), (3, 64), (25000, 2000)])
def test_degenerate_image_sizes_are_message_errors(w, h):
    m = sensor_msgs.Image()
    m.width, m.height, m.encoding, m.step = w, h, 'rgb8', 3 * w
    m.data = bytes(3 * w * h)
    with pytest.raises(MessageError, match='zero size|degenerate'):
        image_to_rgb(m)


def test_degenerate_compressed_image_is_a_message_error():
    strip = np.zeros((1, 4000, 3), np.uint8)
    msg = fill_compressed(sensor_msgs.CompressedImage(), strip, fmt='png')
    with pytest.raises(MessageError, match='4000x1 px: degenerate'):
        compressed_to_rgb(msg)


@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
@pytest.mark.parametrize('data_encoding', [None, 'bgr8', 'rgb8'])
def test_compressed_format_channel_order_is_honoured(fmt, data_encoding):
    # pure red, green and blue thirds: a swap is unmistakable even through jpeg
    rgb = np.zeros((24, 48, 3), np.uint8)
    for k in range(3):
        rgb[:, 16 * k:16 * (k + 1), k] = 255
    msg = fill_compressed(sensor_msgs.CompressedImage(), rgb, fmt=fmt, quality=100,
                          data_encoding=data_encoding)
    if data_encoding is not None:       # as image_transport's compressed plugin writes it
        assert msg.format == f'rgb8; {fmt} compressed {data_encoding}'
    got = compressed_to_rgb(msg).astype(int)[4:-4, [4, 11, 20, 27, 36, 43]]  # inside, off edges
    want = rgb.astype(int)[4:-4, [4, 11, 20, 27, 36, 43]]
    assert np.abs(got - want).max() <= (0 if fmt == 'png' else 40)


def test_compressed_rgb8_data_is_not_swapped():
    import cv2

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200                          # red
    msg = sensor_msgs.CompressedImage()
    msg.format = 'rgb8; png compressed rgb8'   # a driver that encoded the RGB buffer as is
    msg.data = cv2.imencode('.png', rgb)[1].tobytes()
    assert compressed_to_rgb(msg)[0, 0].tolist() == [200, 0, 0]
    msg.format = 'rgb8; png compressed bgr8'   # the same bytes said to be BGR: blue
    assert compressed_to_rgb(msg)[0, 0].tolist() == [0, 0, 200]
    msg.format = '16UC1; compressedDepth png'
    with pytest.raises(MessageError, match='unsupported compressed image format'):
        compressed_to_rgb(msg)
