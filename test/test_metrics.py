"""Metric functions against hand-computed cases."""

import math

import numpy as np
import pytest

from ciper_ros.metrics.pose import markdown_table, pose_metrics, wrap_deg
from ciper_ros.metrics.retrieval import retrieval_metrics


def test_recall_at_k_hand_computed():
    sim = np.array([[0.9, 0.1, 0.2, 0.0],    # positive 0 ranked 1st
                    [0.8, 0.5, 0.9, 0.1],    # positive 1 ranked 3rd
                    [0.1, 0.2, 0.3, 0.4],    # positive 2 ranked 2nd
                    [0.0, 0.0, 0.0, 1.0]])   # positive 3 ranked 1st
    m = retrieval_metrics(sim, np.array([0, 1, 2, 3]), ks=(1, 2, 3))
    assert m['recall@1'] == 0.5 and m['recall@2'] == 0.75 and m['recall@3'] == 1.0
    # G = 4: VIGOR's top int(0.04) + 1 = 1; TransGeo's top 4 // 100 = 0 is not defined
    assert m['recall@1%_vigor_k'] == 1 and m['recall@1%_vigor'] == 0.5
    assert 'recall@1%_transgeo' not in m and 'recall@1%' not in m
    # a tie with the positive does not push it down (strict >, as the reference code)
    assert retrieval_metrics(np.array([[0.5, 0.5, 0.1]]), np.array([1]))['recall@1'] == 1.0
    with pytest.raises(ValueError, match='indices into a gallery of 4'):
        retrieval_metrics(sim, np.array([0, 5, 1, 2]))


def ranked(gallery: int, ranks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(Q, G) scores whose query q has its positive (item 0) at rank ``ranks[q]``."""
    sim = np.zeros((len(ranks), gallery))
    sim[:, 0] = 0.5
    for q, r in enumerate(ranks):
        sim[q, 1:1 + r] = 0.9
    return sim, np.zeros(len(ranks), dtype=int)


@pytest.mark.parametrize('gallery, k_transgeo, k_vigor, old_ceil', [
    (100, 1, 2, 1),      # multiples of 100: the old ceil value was TransGeo's, not VIGOR's
    (200, 2, 3, 2),
    (250, 2, 3, 3),      # otherwise the old ceil value was VIGOR's
    (1000, 10, 11, 10),
])
def test_recall_at_1_percent_both_variants(gallery, k_transgeo, k_vigor, old_ceil):
    ranks = list(range(12))                       # one query at each rank 0..11
    m = retrieval_metrics(*ranked(gallery, ranks))
    assert m['recall@1%_transgeo_k'] == k_transgeo == gallery // 100
    assert m['recall@1%_vigor_k'] == k_vigor == int(gallery * 0.01) + 1
    assert m['recall@1%_transgeo'] == pytest.approx(k_transgeo / 12)
    assert m['recall@1%_vigor'] == pytest.approx(k_vigor / 12)
    assert old_ceil == math.ceil(0.01 * gallery)
    assert m['recall@1%_vigor'] != pytest.approx(old_ceil / 12) or gallery % 100 != 0
    assert m['recall@1'] == pytest.approx(1 / 12) and m['recall@10'] == pytest.approx(10 / 12)


def test_below_100_items_only_vigor_defines_recall_at_1_percent():
    m = retrieval_metrics(*ranked(99, [0, 1, 2]))
    assert 'recall@1%_transgeo' not in m
    assert m['recall@1%_vigor_k'] == 1 and m['recall@1%_vigor'] == pytest.approx(1 / 3)


def test_semi_positives_count_as_negatives_and_as_hits_for_the_hit_rate():
    # gallery items: 0 positive, 1 and 2 semi-positives, 3 and 4 negatives
    sim = np.array([[0.8, 0.9, 0.1, 0.0, 0.0],    # a semi-positive first, then the positive
                    [0.5, 0.9, 0.1, 0.7, 0.0],    # a semi first, a negative, the positive
                    [0.5, 0.1, 0.1, 0.9, 0.0],    # a negative first
                    [0.9, 0.8, 0.7, 0.0, 0.0]])   # the positive first
    semi = np.zeros((4, 5), dtype=bool)
    semi[:, 1:3] = True
    m = retrieval_metrics(sim, np.zeros(4, dtype=int), semi_positives=semi, ks=(1, 2, 3))
    # only the positive is a hit: a semi-positive ranked above it pushes it down
    assert m['recall@1'] == 0.25 and m['recall@2'] == 0.75 and m['recall@3'] == 1.0
    # VIGOR's paper: the top-1 is the positive or a semi-positive (queries 0, 1 and 3)
    assert m['hit_rate'] == 0.75
    # VIGOR's / Sample4Geo's code: no negative above the positive (queries 0 and 3)
    assert m['hit_rate_vigor_code'] == 0.5
    # without semi-positives the same scores give the same recalls and no hit rate
    plain = retrieval_metrics(sim, np.zeros(4, dtype=int), ks=(1, 2, 3))
    assert plain['recall@1'] == 0.25 and 'hit_rate' not in plain
    # a semi-positives mask that marks the positive itself does not change anything
    semi[:, 0] = True
    assert retrieval_metrics(sim, np.zeros(4, dtype=int), semi_positives=semi,
                             ks=(1, 2, 3)) == m
    with pytest.raises(ValueError, match='semi_positives must be'):
        retrieval_metrics(sim, np.zeros(4, dtype=int), semi_positives=semi[:, :3])


def vigor_validate_top(sim: np.ndarray, labels: list[list[int]]) -> dict:
    """VIGOR's ``validate_top`` (train_SAFA.py), transcribed: distances, label lists."""
    dist_array = 2 - 2 * sim
    top1_percent = int(dist_array.shape[1] * 0.01) + 1
    acc = {'1%': 0.0, 1: 0.0, 5: 0.0, 'hit': 0.0}
    for i in range(dist_array.shape[0]):
        gt_dist = dist_array[i, labels[i][0]]
        prediction = np.sum(dist_array[i, :] < gt_dist)
        dist_temp = np.ones(dist_array.shape[1])
        dist_temp[labels[i][1:]] = 0
        prediction_hit = np.sum((dist_array[i, :] < gt_dist) * dist_temp)
        acc['1%'] += prediction < top1_percent
        acc[1] += prediction < 1
        acc[5] += prediction < 5
        acc['hit'] += prediction_hit < 1
    return {k: v / dist_array.shape[0] for k, v in acc.items()}


@pytest.mark.parametrize('gallery', [100, 230, 300])
def test_agrees_with_vigors_own_evaluation_code(gallery):
    rng = np.random.default_rng(gallery)
    q = 400
    g = rng.normal(size=(q, 8))
    a = rng.normal(size=(gallery, 8))
    pos = rng.integers(0, gallery, q)
    a_pos = a[pos]
    g = a_pos + 1.5 * g          # queries near their positive: ranks spread over 0..G
    sim = (g / np.linalg.norm(g, axis=1, keepdims=True)) @ (
        a / np.linalg.norm(a, axis=1, keepdims=True)).T
    labels = [[int(p), *map(int, rng.choice(np.delete(np.arange(gallery), p), 3,
                                            replace=False))] for p in pos]
    semi = np.zeros((q, gallery), dtype=bool)
    for i, lab in enumerate(labels):
        semi[i, lab[1:]] = True
    m = retrieval_metrics(sim, pos, semi_positives=semi)
    want = vigor_validate_top(sim, labels)
    assert 0.05 < want['hit'] < 0.95 and 0.05 < want['1%'] < 0.95    # not a trivial case
    assert m['recall@1%_vigor'] == pytest.approx(want['1%'])
    assert m['recall@1'] == pytest.approx(want[1]) and m['recall@5'] == pytest.approx(want[5])
    assert m['hit_rate_vigor_code'] == pytest.approx(want['hit'])
    assert m['hit_rate'] >= m['hit_rate_vigor_code']


def test_items_outside_a_querys_gallery_do_not_count():
    # two cities of 150 crops each, each query ranked within its own: G = 150, not 300
    sim, pos = ranked(300, [0, 1, 2])
    sim[:, 150:] = -np.inf
    m = retrieval_metrics(sim, pos)
    assert m['recall@1%_transgeo_k'] == 1 and m['recall@1%_vigor_k'] == 2
    assert m['recall@1%_vigor'] == pytest.approx(2 / 3)
    sim[0, 50:] = -np.inf              # galleries of different sizes: the mean K
    m = retrieval_metrics(sim, pos)
    assert m['recall@1%_vigor_k'] == pytest.approx(5 / 3) and 'recall@1%_transgeo' not in m


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
    assert m['heading_error_deg_median'] == pytest.approx(6.0)
    assert m['heading_within_3deg'] == 0.5
    # rotated vehicle (yaw 30 deg): an error along its heading is purely longitudinal
    y30 = math.radians(30.0)
    e = 2.5 * np.array([[math.cos(y30), math.sin(y30)]])
    m = pose_metrics(e, np.zeros((1, 2)), true_yaw_rad=np.array([y30]))
    assert m['longitudinal_error_m_median'] == pytest.approx(2.5)
    assert m['lateral_error_m_median'] == pytest.approx(0.0, abs=1e-12)
    assert 'value' in markdown_table(m, title='t')


def test_stored_records_with_legacy_names_are_upgraded():
    from ciper_ros.metrics.pose import upgrade_metric_names

    old = {'step': 2000, 'val/count': 256, 'val/orientation_error_deg_median': 7.7,
           'val/orientation_within_1deg': 0.06, 'val/recall@1%': 0.04, 'val/recall@1%_k': 3,
           'val/position_error_m_median': 5.0}
    new = upgrade_metric_names(old)
    # K = 3 of G = 256 is VIGOR's int(0.01 G) + 1, not TransGeo's G // 100 = 2
    assert new == {'step': 2000, 'val/count': 256, 'val/heading_error_deg_median': 7.7,
                   'val/heading_within_1deg': 0.06, 'val/recall@1%_vigor': 0.04,
                   'val/recall@1%_vigor_k': 3, 'val/position_error_m_median': 5.0}
    assert upgrade_metric_names({'recall@1%': 0.1, 'recall@1%_k': 3, 'gallery_size': 300}) == \
        {'recall@1%_transgeo': 0.1, 'recall@1%_transgeo_k': 3, 'gallery_size': 300}
    assert upgrade_metric_names(new) == new


def test_descriptor_stats_tell_a_collapsed_descriptor():
    from ciper_ros.metrics.retrieval import descriptor_stats

    rng = np.random.default_rng(0)
    spread = descriptor_stats(rng.normal(size=(300, 64)))
    # a collapsed descriptor: one shared direction plus variance in 3 dimensions
    base = np.zeros((300, 64))
    base[:, 0] = 5.0
    base[:, 1:4] = rng.normal(size=(300, 3))
    collapsed = descriptor_stats(base)
    assert spread['effective_rank'] > 40 and abs(spread['mean_pairwise_cosine']) < 0.05
    assert collapsed['effective_rank'] < 4 and collapsed['mean_pairwise_cosine'] > 0.7
