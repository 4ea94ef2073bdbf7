"""The GNSS + odometry EKF baseline: one hand-computed step, the gate, a drive."""

import math

import numpy as np
import pytest

from ciper_ros.baselines.gnss_odom import (
    GnssOdomConfig,
    GnssOdomFilter,
    run_gnss_odom_filter,
    track_errors,
)


def initialised(config=None):
    f = GnssOdomFilter(config=config)
    f.predict_to(0.0)
    f.update_odometry(10.0, 0.0)
    f.update_gnss(np.array([0.0, 0.0]), 1.0)     # anchor
    f.predict_to(2.0)                            # 20 m of odometry: the course is known
    f.update_gnss(np.array([20.0, 0.0]), 1.0)
    assert f.initialised
    return f


def test_one_step_matches_the_hand_computation():
    f = initialised()
    xy, yaw, cov, _ = f.estimate()
    assert xy.tolist() == [20.0, 0.0] and yaw == 0.0 and cov[0, 0] == pytest.approx(1.0)
    f.predict_to(2.1)
    # x' = x + v dt; P_xx' = P_xx + dt^2 P_vv + q_x dt (no yaw coupling along x at yaw 0)
    p_xx = 1.0 + 0.1 ** 2 * 0.05 ** 2 + 0.05 * 0.1
    assert f.ekf.x[0, 0] == pytest.approx(21.0)
    assert f.ekf.P[0, 0] == pytest.approx(p_xx)
    f.update_gnss(np.array([22.0, 0.0]), 1.0)
    gain = p_xx / (p_xx + 1.0)
    assert f.ekf.x[0, 0] == pytest.approx(21.0 + gain * 1.0, rel=1e-6)
    assert f.ekf.P[0, 0] == pytest.approx((1 - gain) * p_xx, rel=1e-6)


def test_the_mahalanobis_gate_rejects_an_excursion():
    f = initialised(GnssOdomConfig(gnss_rejection_mahalanobis=3.0))
    f.predict_to(2.1)
    assert not f.update_gnss(np.array([21.0, 30.0]), 1.0) and f.gnss_rejected == 1
    assert f.update_gnss(np.array([21.0, 0.5]), 1.0)


def test_a_straight_drive_with_noisy_fixes_beats_the_fixes():
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 60.0, 0.05)
    odom = np.column_stack([t, np.full_like(t, 10.0), np.zeros_like(t)])
    tf = np.arange(0.0, 60.0, 0.2)
    noisy = np.column_stack([10.0 * tf, np.zeros_like(tf)]) + rng.normal(0, 2.0, (len(tf), 2))
    fixes = np.column_stack([tf, noisy, np.full_like(tf, 2.0)])
    truth = np.column_stack([t, 10.0 * t, np.zeros_like(t)])
    track = run_gnss_odom_filter(odom, fixes)
    err = track_errors(track, truth)[track.initialised]
    fix_err = np.hypot(noisy[:, 0] - 10.0 * tf, noisy[:, 1])
    assert track.initialised[-1] and np.median(err) < 0.5 * np.median(fix_err)
    assert math.isfinite(track.yaw_rad[-1]) and abs(track.yaw_rad[-1]) < math.radians(3)
