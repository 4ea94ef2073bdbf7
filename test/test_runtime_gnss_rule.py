"""The GNSS prior rule: the latest valid fix at or before the image stamp, never a later one.

The fixes are placed so that a "nearest fix" rule picks another one than the rule does:
the fix after the image is closer to it than the fix before.
"""

import pytest

from ciper_ros.rosmsg import build as m
from ciper_ros.runtime.gnss import FixBuffer, FixPolicy

S = 1_000_000_000


def _fix(t_ns, lon, sigma=2.0):
    return m.navsatfix(t_ns, 'gnss', 48.137, lon, 500.0, status=0, sigma_m=sigma)


def test_the_fix_before_wins_over_a_closer_fix_after():
    buf = FixBuffer(FixPolicy(max_fix_age_s=1.0, max_speed_mps=10.0, max_prior_sigma_m=20.0))
    buf.add(10 * S, _fix(10 * S, lon=11.0))                       # 0.6 s before the image
    buf.add(10 * S + 7 * S // 10, _fix(10 * S + 7 * S // 10, lon=11.7))  # 0.1 s after
    prior, why, age = buf.prior_at(10 * S + 6 * S // 10)
    assert why == '' and prior.lon_deg == 11.0
    assert age == pytest.approx(0.6)
    assert prior.sigma_m == pytest.approx((2.0 ** 2 + (10.0 * 0.6) ** 2) ** 0.5)


def test_a_fix_at_the_image_stamp_counts_and_one_just_after_does_not():
    buf = FixBuffer()
    buf.add(20 * S + 1, _fix(20 * S + 1, lon=11.3))               # 1 ns after the image
    prior, why, age = buf.prior_at(20 * S)
    assert prior is None and 'no GNSS fix at or before' in why
    buf.add(20 * S, _fix(20 * S, lon=11.2))                       # at the image stamp
    prior, why, age = buf.prior_at(20 * S)
    assert prior.lon_deg == 11.2 and age == 0.0 and prior.sigma_m == pytest.approx(2.0)


def test_a_stale_fix_before_is_refused_though_a_fresh_one_follows():
    buf = FixBuffer(FixPolicy(max_fix_age_s=0.5))
    buf.add(30 * S, _fix(30 * S, lon=11.0))                       # 0.8 s before: stale
    buf.add(30 * S + 9 * S // 10, _fix(30 * S + 9 * S // 10, lon=11.1))   # 0.1 s after
    prior, why, age = buf.prior_at(30 * S + 8 * S // 10)
    assert prior is None and 'stale' in why and age == pytest.approx(0.8)
