"""The drive evaluation's own measures: lateral error, worse windows, a kidnapped start."""

import math

import numpy as np
import pytest

from ciper_ros.experiments.drive_eval import kidnapped_summary, lateral_errors_m, worse_windows
from ciper_ros.metrics.frames import FrameRecord

S = 1_000_000_000


def _rec(t_s: float, err_x: float, err_y: float = 0.0, yaw: float = 0.0,
         ok: bool = True) -> FrameRecord:
    r = FrameRecord(stamp_ns=int(t_s * S), ok=ok)
    r.truth_x_m, r.truth_y_m, r.truth_yaw_rad = 10.0, 20.0, yaw
    if ok:
        r.x_m, r.y_m, r.yaw_rad = 10.0 + err_x, 20.0 + err_y, yaw
    return r


def test_lateral_error_is_across_the_true_heading():
    recs = [_rec(0.0, 3.0, 0.5), _rec(0.2, 0.5, 3.0, yaw=math.pi / 2), _rec(0.4, 1, ok=False)]
    assert lateral_errors_m(recs) == pytest.approx([0.5, 0.5])


def test_worse_windows_count_the_30_s_windows_where_ours_is_worse():
    ours = [_rec(t, 1.0 if t < 40 else 5.0) for t in np.arange(0, 80, 0.5)]
    base = [_rec(t, 2.0) for t in np.arange(0, 80, 0.5)]
    w = worse_windows(ours, base)
    # windows start every second up to the last frame less 30 s (0-49 s); those reaching
    # past 40 s mix in 5 m frames
    assert w['windows'] == 50
    mean_ours = [np.mean([1.0 if t < 40 else 5.0 for t in np.arange(s, s + 30, 0.5)])
                 for s in range(50)]
    assert w['worse'] == sum(m > 2.0 for m in mean_ours)
    assert w['worst_ours_m'] == pytest.approx(5.0) and w['worst_baseline_m'] == 2.0


def test_a_kidnapped_start_is_below_2_m_once_it_stays_there():
    # lost for 4 s, a brief good moment at 1 s, then held below 2 m from 4 s on
    recs = [_rec(t, 50.0 if t < 4 else 1.0, ok=t >= 0.4) for t in np.arange(0, 40, 0.2)]
    recs[5] = _rec(1.0, 0.5)
    k = kidnapped_summary(recs)
    assert k['time_to_2m_s'] == pytest.approx(4.0)
    assert k['error_at_10s_m'] == pytest.approx(1.0) and k['error_at_30s_m'] == 1.0
    assert k['below_2m_fraction_10_to_30s'] == 1.0
    never = kidnapped_summary([_rec(t, 30.0) for t in np.arange(0, 40, 0.2)])
    assert math.isnan(never['time_to_2m_s']) and never['below_2m_fraction_10_to_30s'] == 0.0


def test_outage_errors_take_the_worst_frame_inside_each_long_gnss_gap():
    from ciper_ros.experiments.drive_eval import outage_errors

    fixes = [int(t * S) for t in [*np.arange(0, 10, 0.2), *np.arange(50, 60, 0.2)]]
    recs = [_rec(t, 0.5 + (t - 10) / 40 if 10 <= t <= 50 else 0.2) for t in np.arange(0, 60, 1)]
    recs[30] = _rec(30.0, 0.0, ok=False)                # not localized inside: infinite
    o = outage_errors(recs, fixes)
    assert o['outages'] == [(9.8, 40.2)]
    assert o['max_error_m'] == [math.inf]
    recs[30] = _rec(30.0, 1.0)
    assert outage_errors(recs, fixes)['max_error_m'] == [pytest.approx(1.475)]
    assert outage_errors(recs, fixes[:50])['outages'] == []     # no long gap: no outage
