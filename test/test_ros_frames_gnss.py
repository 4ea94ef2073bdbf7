"""Camera mount from TF, camera -> base_link poses, and the GNSS prior rule (no DDS)."""

import math

import numpy as np
import pytest

from ciper_ros.rosmsg import build as m
from ciper_ros.runtime.gnss import FixBuffer, FixPolicy
from ciper_ros.runtime.mount import (
    base_from_camera,
    camera_from_base,
    Mount,
    mount_from_edges,
    tf_edges,
)

Q_OPTICAL = (-0.5, 0.5, -0.5, 0.5)         # base_link -> optical frame, looking forward


def _yaw_q(yaw):
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def test_mount_of_an_optical_frame_and_a_chain():
    msg = m.tf_message([(0, 'base_link', 'camera_optical_frame', (1.5, 0.2, 1.6), Q_OPTICAL)])
    mount = mount_from_edges(tf_edges(msg), base_frame='base_link',
                             camera_frame='camera_optical_frame')
    assert (mount.x_m, mount.y_m) == pytest.approx((1.5, 0.2))
    assert mount.yaw_rad == pytest.approx(0.0, abs=1e-9)
    assert 'tf_static' in mount.source
    # a chain: base_link -> camera_link (rotated 90 deg left, 1 m up) -> optical frame
    chain = m.tf_message([(0, 'base_link', 'camera_link', (0.5, -0.3, 1.0), _yaw_q(math.pi / 2)),
                          (0, 'camera_link', 'cam_optical', (0.0, 0.1, 0.0), Q_OPTICAL)])
    mount = mount_from_edges(tf_edges(chain), base_frame='base_link', camera_frame='cam_optical')
    # 0.1 m along camera_link's y (= base -x after the 90 deg turn)
    assert (mount.x_m, mount.y_m) == pytest.approx((0.4, -0.3))
    assert mount.yaw_rad == pytest.approx(math.pi / 2)
    assert 'base_link -> camera_link -> cam_optical' in mount.source
    # a non-optical camera frame looks along +x; a frame outside the tree: no mount
    rear = m.tf_message([(0, 'base_link', 'rear_cam', (-1.0, 0.0, 1.0), _yaw_q(math.pi))])
    assert mount_from_edges(tf_edges(rear), base_frame='base_link',
                            camera_frame='rear_cam').yaw_rad == pytest.approx(math.pi)
    assert mount_from_edges(tf_edges(rear), base_frame='base_link', camera_frame='x') is None
    down = m.tf_message([(0, 'base_link', 'down_optical', (0, 0, 1), (0.0, 0.0, 0.0, 1.0))])
    with pytest.raises(ValueError, match='straight up or down'):
        mount_from_edges(tf_edges(down), base_frame='base_link', camera_frame='down_optical')
    bad = m.tf_message([(0, 'base_link', 'c', (0, 0, 1), (0.0, 0.0, 0.0, 0.0))])
    with pytest.raises(ValueError, match='quaternion is zero'):
        tf_edges(bad)


def test_base_from_camera_inverts_and_propagates_covariance():
    mount = Mount(1.5, -0.4, math.radians(10))
    xy_b, yaw_b = np.array([12.0, -7.0]), 2.5
    xy_c, yaw_c = camera_from_base(xy_b, yaw_b, mount)
    cov = np.diag([0.5, 0.8, 0.02])
    xy2, yaw2, cov_b = base_from_camera(xy_c, yaw_c, cov, mount)
    assert xy2 == pytest.approx(xy_b) and yaw2 == pytest.approx(yaw_b)
    # the Jacobian numerically: perturb the camera yaw
    eps = 1e-6
    xy3, _, _ = base_from_camera(xy_c, yaw_c + eps, cov, mount)
    J = np.eye(3)
    J[:2, 2] = (xy3 - xy2) / eps
    assert cov_b == pytest.approx(J @ cov @ J.T, rel=1e-5, abs=1e-9)
    # heading uncertainty widens the base position by the 1.55 m lever arm
    assert np.trace(cov_b[:2, :2]) > np.trace(cov[:2, :2]) + 0.02 * 1.55 ** 2 * 0.99


def _fix(t_ns, lat=48.137, lon=11.575, status=0, sigma=3.0):
    return m.navsatfix(t_ns, 'gnss', lat, lon, 500.0, status=status, sigma_m=sigma)


S = 1_000_000_000


def test_fix_buffer_picks_the_latest_fix_at_or_before_the_image():
    buf = FixBuffer(FixPolicy(max_fix_age_s=1.0, max_speed_mps=10.0, max_prior_sigma_m=9.0))
    assert buf.prior_at(5 * S)[0] is None
    buf.add(10 * S, _fix(10 * S, lon=11.0))
    buf.add(10 * S + S // 5, _fix(10 * S + S // 5, lon=11.2))
    buf.add(11 * S, _fix(11 * S, lon=11.5))       # after the image: not used for it
    prior, why, age = buf.prior_at(10 * S + S // 2)
    assert prior.lon_deg == 11.2 and why == '' and age == pytest.approx(0.3)
    assert prior.sigma_m == pytest.approx(math.hypot(3.0, 10.0 * 0.3))
    prior, why, _ = buf.prior_at(11 * S)
    assert prior.lon_deg == 11.5 and prior.sigma_m == pytest.approx(3.0)
    prior, why, age = buf.prior_at(11 * S + 9 * S // 10)         # 0.9 s: sigma 9.5 > 9
    assert prior is None and why.startswith('prior too uncertain')
    prior, why, age = buf.prior_at(13 * S)
    assert prior is None and why.startswith('GNSS fix is stale') and age == pytest.approx(2.0)
    # refused fixes are never buffered, and say why
    assert buf.add(12 * S, _fix(12 * S, status=-1)) == 'GNSS status is STATUS_NO_FIX (-1)'
    assert 'invalid' in buf.add(12 * S, _fix(12 * S, lat=math.nan))
    assert 'covariance' in buf.add(12 * S, _fix(12 * S, sigma=math.nan))
    assert len(buf) == 3 and buf.rejected == 3
    # unknown covariance: the default sigma
    buf.add(12 * S, m.navsatfix(12 * S, 'g', 48.0, 11.0, 0.0, status=0, sigma_m=None))
    assert buf.prior_at(12 * S)[0].sigma_m == pytest.approx(5.0)
    # the clock jumps back (a looped bag): old fixes are void
    buf.add(3 * S, _fix(3 * S, lon=10.0))
    assert len(buf) == 1 and buf.resets == 1 and buf.prior_at(3 * S)[0].lon_deg == 10.0
