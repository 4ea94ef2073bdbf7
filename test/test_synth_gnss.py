"""GNSS profiles: each environment's error terms have the statistics its parameters promise."""

import hashlib
import math

import numpy as np
import pytest

from ciper_ros.cli.synth import GNSS_PROFILE_NAMES
from ciper_ros.synth.drive import Trajectory
from ciper_ros.synth.gnss import gnss_profile, GNSS_PROFILES, GnssConfig, simulate_gnss
from ciper_ros.util.errors import UserError


def straight(duration_s: float) -> Trajectory:
    t = np.arange(0.0, duration_s, 0.05)
    return Trajectory(t_s=t, xy_m=np.stack([10.0 * t, np.zeros_like(t)], -1),
                      yaw_rad=np.zeros_like(t), speed_mps=np.full_like(t, 10.0))


def test_profile_names_are_the_clis():
    assert GNSS_PROFILE_NAMES == tuple(GNSS_PROFILES)
    assert all(cfg.name == name for name, cfg in GNSS_PROFILES.items())
    with pytest.raises(UserError, match='unknown GNSS profile .*urban'):
        gnss_profile('city')
    cfg = gnss_profile('urban', rate_hz=10.0, sigma_m=None)
    assert cfg.rate_hz == 10.0 and cfg.sigma_m == GNSS_PROFILES['urban'].sigma_m


def test_white_profile_reproduces_the_original_model():
    # digest of the original simulate_gnss (before profiles) on this trajectory and seed:
    # bags recorded before profiles existed are the same bags now
    track = simulate_gnss(straight(300.0), GnssConfig(), np.random.default_rng(7))
    digest = hashlib.sha256(np.ascontiguousarray(track.xy_m).tobytes()
                            + track.fix.tobytes()).hexdigest()[:16]
    assert digest == '9c5365575a534b2c'
    assert np.allclose(track.error_m, track.xy_m - straight(300.0).at(track.t_s)[0])
    assert not track.multipath_m.any()


def test_open_sky_is_about_a_metre_and_slowly_varying():
    cfg = GNSS_PROFILES['open-sky']
    traj = straight(20000.0)
    track = simulate_gnss(traj, cfg, np.random.default_rng(3))
    horiz = np.linalg.norm(track.error_m, axis=1)
    assert 0.7 < np.median(horiz) < 1.5
    assert track.fix.all()
    # the error one second later is nearly the same: a bias, not noise
    lag = int(cfg.rate_hz)
    c = np.corrcoef(track.error_m[:-lag, 0], track.error_m[lag:, 0])[0, 1]
    assert c > 0.85
    # the reported sigma is honest here: the per-axis error spread matches it within 30 %
    assert np.std(track.error_m[:, 0]) == pytest.approx(cfg.nominal_sigma_m, rel=0.3)


def test_urban_excursions_have_the_documented_size_duration_and_rate():
    cfg = GNSS_PROFILES['urban']
    traj = straight(30000.0)
    track = simulate_gnss(traj, cfg, np.random.default_rng(4))
    mp = np.linalg.norm(track.multipath_m, axis=1)
    on = mp > 0
    # excursions: contiguous runs of a non-zero pull
    edges = np.flatnonzero(np.diff(on.astype(int)))
    starts, ends = edges[::2] + 1, edges[1::2] + 1
    n = min(len(starts), len(ends))
    durations = (ends[:n] - starts[:n]) / cfg.rate_hz
    peaks = np.array([mp[a:b].max() for a, b in zip(starts[:n], ends[:n], strict=True)])
    assert n > 200
    assert durations.min() >= cfg.multipath_s[0] - 1.0
    assert durations.max() <= 2 * cfg.multipath_s[1]
    assert np.percentile(peaks, 5) > 0.8 * cfg.multipath_m[0]
    assert peaks.max() <= 2 * cfg.multipath_m[1] + 1e-6   # two may overlap, never more often
    mean_gap = 1.0 / cfg.multipath_rate_hz
    mean_len = np.mean(cfg.multipath_s)
    assert on.mean() == pytest.approx(mean_len / (mean_len + mean_gap), rel=0.2)
    # biased, not noisy: the error keeps its direction for many seconds
    lag = int(10 * cfg.rate_hz)
    c = np.corrcoef(track.error_m[:-lag, 0], track.error_m[lag:, 0])[0, 1]
    assert c > 0.5
    # the receiver under-states the error where it matters: inside a 10 m+ excursion the
    # true error is several reported sigmas
    big = mp > 10.0
    ratio = np.linalg.norm(track.error_m[big], axis=1) / track.reported_sigma_m[big]
    assert np.median(ratio) > 2.5
    assert track.reported_sigma_m.min() == pytest.approx(cfg.nominal_sigma_m)


def test_outages_last_30_to_120_s_and_can_be_scheduled():
    cfg = GNSS_PROFILES['outages']
    track = simulate_gnss(straight(20000.0), cfg, np.random.default_rng(5))
    lost = ~track.fix
    edges = np.flatnonzero(np.diff(lost.astype(int)))
    starts, ends = edges[::2] + 1, edges[1::2] + 1
    durations = (ends - starts[:len(ends)]) / cfg.rate_hz
    assert len(durations) > 30
    assert durations.min() >= cfg.dropout_s[0] - 0.5
    assert durations.max() <= cfg.dropout_s[1] + 0.5
    sched = gnss_profile('open-sky', scheduled_outages_s=((20.0, 60.0),))
    track = simulate_gnss(straight(120.0), sched, np.random.default_rng(6))
    inside = (track.t_s >= 20.0) & (track.t_s < 80.0)
    assert not track.fix[inside].any() and track.fix[~inside].all()
    assert math.isclose(track.fix.mean(), 1 - 60.0 / 120.0, abs_tol=0.02)
