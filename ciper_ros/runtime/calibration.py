"""Covariance calibration: scale factors fitted on per-frame records with ground truth.

The records come from the one per-frame path (:class:`~ciper_ros.runtime.pipeline.
FramePipeline`) run with an :func:`uncalibrated` copy of the Localizer, so calibration sees
exactly what the node and the evaluations see. The fit judges the *camera* pose and the
covariance the model produced (the scales apply there, before the mount moves it to
base_link).
"""

from __future__ import annotations

from dataclasses import replace
import math

import numpy as np

from ciper_ros.metrics.frames import (
    CHI2_95_1DOF,
    CHI2_95_2DOF,
    CHI2_MEDIAN_1DOF,
    CHI2_MEDIAN_2DOF,
    FrameRecord,
)
from ciper_ros.runtime.localizer import Localizer
from ciper_ros.util.errors import UserError

STATISTICS = ('p95', 'median')


def uncalibrated(localizer: Localizer) -> Localizer:
    """Return a Localizer sharing model, index and cache, with unit covariance scales."""
    loc = Localizer.__new__(Localizer)
    loc.__dict__.update(localizer.__dict__)
    loc.cfg = replace(localizer.cfg, cov_scale=1.0, yaw_cov_scale=1.0, forward_cov_scale=None,
                      forward_yaw_cov_scale=None)
    return loc


def _coverage(n: np.ndarray, scale: float, bound95: float) -> dict:
    # errors inside the 1- and 2-sigma ellipse (Mahalanobis radius 1 and 2) and the 95 %
    return {'1sigma': float(np.mean(n / scale <= 1.0)),
            '2sigma': float(np.mean(n / scale <= 4.0)),
            '95': float(np.mean(n / scale <= bound95)),
            'mean_nees': float(np.mean(n / scale))}


def fit_covariance_scales(records: list[FrameRecord], *, statistic: str = 'p95') -> dict:
    """Covariance scale factors from records of an uncalibrated run with camera truth.

    ``statistic``: ``'p95'`` (default) scales so that 95 % of the normalised squared errors
    e^T S^-1 e fall inside the chi-square 95 % bound: the 95 % ellipse then covers 95 % of
    the calibration errors even when the error distribution has a heavy tail of wrong tiles,
    which a filter needs more than a right median; ``'median'`` matches the chi-square
    median instead (tighter ellipses for the typical frame, overconfident in the tail).
    Position uses 2 degrees of freedom, heading 1. Returns the factors, the mean NEES and
    the 1-sigma, 2-sigma and 95 % coverage before and after.
    """
    if statistic not in STATISTICS:
        raise UserError(f'statistic must be one of {STATISTICS}, got {statistic!r}')
    pairs = [r.camera_nees() for r in records
             if all(math.isfinite(v) for v in r.camera_xy_yaw + r.truth_camera_xy_yaw)]
    if len(pairs) < 5:
        raise UserError(f'calibration needs at least 5 localized frames with truth, got '
                        f'{len(pairs)}')
    nx, ny = (np.array(v) for v in zip(*pairs, strict=True))
    if statistic == 'p95':
        sx = float(np.quantile(nx, 0.95) / CHI2_95_2DOF)
        sy = float(np.quantile(ny, 0.95) / CHI2_95_1DOF)
    else:
        sx = float(np.median(nx) / CHI2_MEDIAN_2DOF)
        sy = float(np.median(ny) / CHI2_MEDIAN_1DOF)
    sx, sy = max(sx, 1e-6), max(sy, 1e-6)
    return {'cov_scale': sx, 'yaw_cov_scale': sy, 'frames': len(nx), 'statistic': statistic,
            'position_coverage_before': _coverage(nx, 1.0, CHI2_95_2DOF),
            'position_coverage_after': _coverage(nx, sx, CHI2_95_2DOF),
            'heading_coverage_before': _coverage(ny, 1.0, CHI2_95_1DOF),
            'heading_coverage_after': _coverage(ny, sy, CHI2_95_1DOF),
            'expected_coverage': {'position': {'1sigma': 0.393, '2sigma': 0.865, '95': 0.95,
                                               'mean_nees': 2.0},
                                  'heading': {'1sigma': 0.683, '2sigma': 0.954, '95': 0.95,
                                              'mean_nees': 1.0}}}


def fit_match_calibration(match_logits: np.ndarray, null_logits: np.ndarray, *,
                          max_false_accept: float = 0.01,
                          min_real_accept: float = 0.0) -> dict:
    """Platt scaling of the match head, and the acceptance threshold.

    ``match_logits``: raw match logits of real frames at their true place (the tile the
    Localizer chose); ``null_logits``: of frames that match nothing (images of nothing,
    other cities' images, wrong cameras). Fits p = sigmoid(a z + b) by maximum likelihood
    with the two classes weighted equally, then picks ``min_match_prob``: the lowest
    probability that accepts at most ``max_false_accept`` of the null frames (never below
    0.5). When that keeps fewer than ``min_real_accept`` of the real frames (a head that
    cannot tell them apart so strictly: a threshold rejecting most real frames makes the
    camera useless), the threshold is lowered to keep that share (``relaxed`` True; the
    null acceptance it costs is returned). Returns ``match_scale``, ``match_bias``,
    ``min_match_prob``, the accept rates of both sets at it, and ``usable``: False when the
    fitted scale is not positive (the head ranks null frames above real ones: untrained or
    broken; do not ship the fit).
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    pos = np.asarray(match_logits, np.float64).ravel()
    neg = np.asarray(null_logits, np.float64).ravel()
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if len(pos) < 5 or len(neg) < 5:
        raise UserError(f'match calibration needs at least 5 real and 5 null frames, got '
                        f'{len(pos)} and {len(neg)}')

    def nll(ab):
        a, b = ab
        lp = -np.logaddexp(0.0, -(a * pos + b))        # log sigmoid
        ln = -np.logaddexp(0.0, a * neg + b)           # log (1 - sigmoid)
        return -(lp.mean() + ln.mean()) / 2

    fit = minimize(nll, x0=np.array([1.0, 0.0]), method='Nelder-Mead',
                   options={'xatol': 1e-6, 'fatol': 1e-9, 'maxiter': 4000})
    a, b = (float(v) for v in fit.x)
    p_pos = expit(a * pos + b)
    p_neg = expit(a * neg + b)
    # the smallest threshold at or above 0.5 leaving <= max_false_accept of nulls above it
    k = int(math.floor(max_false_accept * len(neg)))
    worst = np.sort(p_neg)[::-1]
    thr = max(0.5, float(np.nextafter(worst[k], 1.0)) if k < len(worst) else 0.5)
    strict = float(np.mean(p_pos >= thr))
    relaxed = strict < min_real_accept
    if relaxed:        # the highest threshold keeping min_real_accept of the real frames
        keep = int(math.ceil(min_real_accept * len(pos)))
        thr = float(np.sort(p_pos)[::-1][keep - 1])
    return {'match_scale': a, 'match_bias': b, 'min_match_prob': thr, 'relaxed': relaxed,
            'min_real_accept': min_real_accept, 'real_accepted_strict': strict,
            'real_accepted': float(np.mean(p_pos >= thr)),
            'null_accepted': float(np.mean(p_neg >= thr)),
            'real_frames': int(len(pos)), 'null_frames': int(len(neg)),
            'max_false_accept': max_false_accept, 'usable': a > 0}
