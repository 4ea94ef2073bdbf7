"""Metric functions against hand-computed cases."""

import math

import numpy as np
import pytest

from ciper_ros.metrics.pose import markdown_table, pose_metrics, retrieval_metrics, wrap_deg


def test_recall_at_k_hand_computed():
    sim = np.array([[0.9, 0.1, 0.2, 0.0],    # positive 0 ranked 1st
                    [0.8, 0.5, 0.9, 0.1],    # positive 1 ranked 3rd
                    [0.1, 0.2, 0.3, 0.4],    # positive 2 ranked 2nd
                    [0.0, 0.0, 0.0, 1.0]])   # positive 3 ranked 1st
    m = retrieval_metrics(sim, np.array([0, 1, 2, 3]), ks=(1, 2, 3))
    assert m['recall@1'] == 0.5 and m['recall@2'] == 0.75 and m['recall@3'] == 1.0
    assert m['recall@1%_k'] == 1 and m['recall@1%'] == 0.5
    big = retrieval_metrics(np.random.default_rng(0).random((5, 250)), np.arange(5))
    assert big['recall@1%_k'] == 3   # ceil(1 % of 250)


def test_semi_positives_are_masked_and_count_as_hits():
    sim = np.array([[0.5, 0.9, 0.1],   # top-1 is item 1, a semi-positive of query 0
                    [0.2, 0.3, 0.9]])  # top-1 is item 2: neither positive nor semi
    semi = np.array([[False, True, False], [False, False, False]])
    m = retrieval_metrics(sim, np.array([0, 1]), semi_positives=semi)
    assert m['recall@1'] == 0.5        # query 0's semi-positive is masked: positive first
    assert m['hit_rate'] == 0.5        # query 0 hits (semi), query 1 misses
    with pytest.raises(ValueError):
        retrieval_metrics(sim, np.array([0, 5]))


def test_orientation_wraps_to_0_180():
    assert wrap_deg(np.array([190.0, -190.0, 359.0, 180.0, -180.0, 0.0])).tolist() == \
        [170.0, 170.0, 1.0, 180.0, 180.0, 0.0]


def test_lateral_longitudinal_in_the_vehicle_frame():
    # vehicle heading north (yaw 90 deg): an error 2 m east is lateral (to its right),
    # an error 4 m north is longitudinal
    true_xy = np.zeros((2, 2))
    pred = np.array([[2.0, 0.0], [0.0, 4.0]])
    yaw = np.full(2, math.pi / 2)
    m = pose_metrics(pred, true_xy, pred_yaw_rad=yaw + np.radians([2.0, -10.0]),
                     true_yaw_rad=yaw)
    assert m['lateral_within_1m'] == 0.5 and m['lateral_within_3m'] == 1.0
    assert m['longitudinal_within_3m'] == 0.5 and m['longitudinal_within_5m'] == 1.0
    assert m['position_error_m_mean'] == pytest.approx(3.0)
    assert m['orientation_error_deg_median'] == pytest.approx(6.0)
    assert m['orientation_within_3deg'] == 0.5
    # rotated vehicle (yaw 30 deg): an error along its heading is purely longitudinal
    y30 = math.radians(30.0)
    e = 2.5 * np.array([[math.cos(y30), math.sin(y30)]])
    m = pose_metrics(e, np.zeros((1, 2)), true_yaw_rad=np.array([y30]))
    assert m['longitudinal_error_m_median'] == pytest.approx(2.5)
    assert m['lateral_error_m_median'] == pytest.approx(0.0, abs=1e-12)
    assert 'value' in markdown_table(m, title='t')
