"""The best hypothesis and its covariance, from decoded hypotheses: pure numpy, no model.

The Localizer decodes the model's outputs with :func:`ciper_ros.model.postprocess.hypotheses`,
puts every hypothesis into the index's ENU frame (:func:`to_index_frame`) and calls
:func:`select_pose`. Each hypothesis is scored ``confidence x (1 + cosine) / 2``, times the
prior's Gaussian likelihood when there is a prior; the covariance is the score-weighted
spread of the ``spread_top`` best hypotheses around the best one (heading differences
wrapped), scaled by the calibration factors, its standard deviations clamped to floors and
ceilings while its correlations are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ciper_ros.geo.enu import LocalTangentPlane
from ciper_ros.geo.heading import wrap_angle_rad

# The smallest eigenvalue the correlation matrix may have: a spread of two distinct
# hypotheses (or of several on one line) is rank one, which floored standard deviations
# alone would leave singular (a zero-width ellipse across the line, an infinite NEES).
# 1e-3 caps a pairwise correlation at 0.999 and leaves every full-rank spread unchanged.
MIN_CORRELATION_EIGENVALUE = 1e-3


@dataclass(frozen=True)
class CovarianceRule:
    """How the hypothesis spread becomes a covariance (LocalizerConfig's fields)."""

    spread_top: int = 8                  # hypotheses entering the covariance
    pos_scale: float = 1.0               # calibration factors on the variances
    yaw_scale: float = 1.0
    sigma_floor_m: float = 0.5
    sigma_ceiling_m: float = 50.0
    yaw_sigma_floor_rad: float = math.radians(1.0)
    yaw_sigma_ceiling_rad: float = math.pi


@dataclass(frozen=True)
class Selection:
    """The chosen hypothesis: its candidate row and query, pose, score and covariance."""

    candidate: int                       # row of the candidate tile it came from
    query: int                           # its query (column) in that row
    xy_m: np.ndarray                     # (2,) index ENU frame
    yaw_rad: float
    score: float
    covariance: np.ndarray               # (3, 3) over (x_m, y_m, yaw_rad)
    sigma_m: np.ndarray                  # (2,) floored standard deviations of x and y


def to_index_frame(plane: LocalTangentPlane, tile_latlon_deg: np.ndarray,
                   xy_m: np.ndarray) -> np.ndarray:
    """Hypotheses (K, Q, 2) east/north of their tiles' centres -> the index's ENU frame.

    Through each tile's own tangent plane and WGS84, so tiles far from the datum stay exact.
    """
    tile_latlon_deg = np.asarray(tile_latlon_deg, np.float64).reshape(-1, 2)
    xy_m = np.asarray(xy_m, np.float64)
    out = np.empty(xy_m.shape)
    for j, (lat, lon) in enumerate(tile_latlon_deg):
        ll = LocalTangentPlane(float(lat), float(lon)).latlon_from_xy_m(xy_m[j])
        out[j] = plane.xy_m_from_latlon(ll)
    return out


def hypothesis_scores(*, confidence: np.ndarray, similarity: np.ndarray, xy_m: np.ndarray,
                      prior_xy_m: np.ndarray | None = None,
                      prior_sigma_m: float | None = None,
                      match_prob: np.ndarray | None = None) -> np.ndarray:
    """Scores (K, Q): confidence x (1 + retrieval cosine) / 2 x the prior's likelihood.

    ``match_prob`` (K,): each tile's calibrated match probability (models with a match
    head), a factor of its hypotheses' scores.
    """
    score = np.asarray(confidence, np.float64) * \
        (1.0 + np.asarray(similarity, np.float64)[:, None]) / 2.0
    if match_prob is not None:
        score = score * np.asarray(match_prob, np.float64)[:, None]
    if prior_xy_m is not None:
        d2 = np.sum((np.asarray(xy_m) - np.asarray(prior_xy_m)) ** 2, axis=-1)
        score = score * np.exp(-0.5 * d2 / float(prior_sigma_m) ** 2)
    return score


def spread_covariance(*, xy_m: np.ndarray, yaw_rad: np.ndarray, weights: np.ndarray,
                      centre_xy_m: np.ndarray, centre_yaw_rad: float) -> np.ndarray:
    """Weighted second moment (3, 3) of hypotheses (N, 2), (N,) around a centre.

    Weights are normalised here; heading differences are wrapped to (-pi, pi] (hypotheses
    at +179 and -179 deg are 2 deg apart).
    """
    w = np.asarray(weights, np.float64)
    w = w / max(float(w.sum()), 1e-12)
    d_xy = np.asarray(xy_m, np.float64) - np.asarray(centre_xy_m, np.float64)
    d_yaw = wrap_angle_rad(np.asarray(yaw_rad, np.float64) - centre_yaw_rad)
    v = np.column_stack([d_xy, np.atleast_1d(d_yaw)])                 # (N, 3)
    return (v * w[:, None]).T @ v


def floored_covariance(cov: np.ndarray, rule: CovarianceRule) -> np.ndarray:
    """Scale the variances, clamp the standard deviations, keep the correlations.

    Where a standard deviation of the spread is zero (hypotheses that coincide) its
    correlations are zero and the floor alone sets it.
    """
    cov = np.asarray(cov, np.float64)
    var = np.diag(cov) * np.array([rule.pos_scale, rule.pos_scale, rule.yaw_scale])
    s_xy = np.sqrt(np.clip(var[:2], rule.sigma_floor_m ** 2, rule.sigma_ceiling_m ** 2))
    s_yaw = math.sqrt(min(max(float(var[2]), rule.yaw_sigma_floor_rad ** 2),
                          rule.yaw_sigma_ceiling_rad ** 2))
    sig = np.array([s_xy[0], s_xy[1], s_yaw])
    raw = np.sqrt(np.maximum(np.diag(cov), 0.0))
    denom = np.outer(raw, raw)
    corr = np.divide(cov, denom, out=np.zeros((3, 3)), where=denom > 0)
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    lam = float(np.linalg.eigvalsh(corr)[0])
    if lam < MIN_CORRELATION_EIGENVALUE:     # shrink towards identity just enough
        e = (MIN_CORRELATION_EIGENVALUE - lam) / (1.0 - lam)
        corr = (1.0 - e) * corr + e * np.eye(3)
    return corr * np.outer(sig, sig)


def select_pose(*, xy_m: np.ndarray, yaw_rad: np.ndarray, confidence: np.ndarray,
                similarity: np.ndarray, prior_xy_m: np.ndarray | None = None,
                prior_sigma_m: float | None = None,
                rule: CovarianceRule = CovarianceRule(),
                match_prob: np.ndarray | None = None) -> Selection:
    """Choose the best of K x Q hypotheses and its covariance.

    :param xy_m: (K, Q, 2) hypotheses in the index's ENU frame
    :param yaw_rad: (K, Q) their headings
    :param confidence: (K, Q) the model's probabilities
    :param similarity: (K,) retrieval cosine of each candidate tile
    :param prior_xy_m: the prior's position (index ENU frame), with ``prior_sigma_m``
    :param match_prob: (K,) calibrated match probability of each tile, or None
    """
    xy_m = np.asarray(xy_m, np.float64)
    yaw_rad = np.asarray(yaw_rad, np.float64)
    score = hypothesis_scores(confidence=confidence, similarity=similarity, xy_m=xy_m,
                              prior_xy_m=prior_xy_m, prior_sigma_m=prior_sigma_m,
                              match_prob=match_prob)
    flat = np.argsort(-score, axis=None, kind='stable')
    j, q = np.unravel_index(flat[0], score.shape)
    best_xy, best_yaw = xy_m[j, q], float(yaw_rad[j, q])
    top = flat[:rule.spread_top]
    cov = spread_covariance(xy_m=xy_m.reshape(-1, 2)[top], yaw_rad=yaw_rad.ravel()[top],
                            weights=score.ravel()[top], centre_xy_m=best_xy,
                            centre_yaw_rad=best_yaw)
    cov = floored_covariance(cov, rule)
    return Selection(candidate=int(j), query=int(q), xy_m=best_xy, yaw_rad=best_yaw,
                     score=float(score[j, q]), covariance=cov,
                     sigma_m=np.sqrt(np.diag(cov)[:2]))


@dataclass(frozen=True)
class TileHypothesis:
    """One mode of a decoded tile: its pose, covariance and weight (what a tracker weighs)."""

    candidate: int                       # row of the candidate tile
    xy_m: np.ndarray                     # (2,) index ENU frame
    yaw_rad: float
    covariance: np.ndarray               # (3, 3), floored like the frame's
    weight: float                        # normalised over the frame's modes (sum 1)


def tile_hypotheses(*, xy_m: np.ndarray, yaw_rad: np.ndarray, confidence: np.ndarray,
                    similarity: np.ndarray, rule: CovarianceRule = CovarianceRule(),
                    match_prob: np.ndarray | None = None, modes_per_tile: int = 1,
                    mode_separation_m: float = 3.0,
                    min_mode_ratio: float = 0.1) -> list[TileHypothesis]:
    """Give the distinct modes of each of K decoded tiles, best first (what a tracker weighs).

    Scored as :func:`hypothesis_scores` without the prior: a tracker weighs GNSS itself,
    and a frame that saw another place than the fix must be able to say so. A tile's
    queries can name several places (a forward camera along a road: a few metres or tens
    of metres along it): up to ``modes_per_tile`` queries, best first, each farther than
    ``mode_separation_m`` from the modes before it and scoring at least ``min_mode_ratio``
    of the tile's best, are its modes. A query belongs to its nearest mode (none farther than
    twice the separation: a weak stray query is no mode's spread); a mode's covariance is
    the floored spread of its own ``spread_top`` best queries. Weights are
    the modes' best scores, normalised over the frame (uniform when every score is zero).
    """
    xy_m = np.asarray(xy_m, np.float64)
    yaw_rad = np.asarray(yaw_rad, np.float64)
    score = hypothesis_scores(confidence=confidence, similarity=similarity, xy_m=xy_m,
                              match_prob=match_prob)                     # (K, Q)
    modes: list[tuple[int, int, np.ndarray]] = []       # (tile, query, its members)
    for j in range(len(score)):
        order = np.argsort(-score[j], kind='stable')
        picked: list[int] = []
        for q in order:
            if len(picked) >= max(1, modes_per_tile):
                break
            if picked and score[j, q] < min_mode_ratio * score[j, order[0]]:
                break
            if all(np.hypot(*(xy_m[j, q] - xy_m[j, m])) > mode_separation_m for m in picked):
                picked.append(int(q))
        d = np.linalg.norm(xy_m[j][:, None, :] - xy_m[j][picked][None], axis=-1)  # (Q, M)
        owner = np.where(d.min(axis=1) <= 2.0 * mode_separation_m, np.argmin(d, axis=1), -1)
        for i, q in enumerate(picked):
            members = [int(v) for v in order if owner[v] == i][:rule.spread_top]
            modes.append((j, q, np.asarray(members)))
    best = np.array([score[j, q] for j, q, _ in modes])
    total = float(best.sum())
    weights = best / total if total > 0 else np.full(len(best), 1.0 / len(best))
    out = []
    for i in np.argsort(-best, kind='stable'):
        j, q, members = modes[i]
        cov = spread_covariance(xy_m=xy_m[j, members], yaw_rad=yaw_rad[j, members],
                                weights=score[j, members], centre_xy_m=xy_m[j, q],
                                centre_yaw_rad=float(yaw_rad[j, q]))
        out.append(TileHypothesis(candidate=int(j), xy_m=xy_m[j, q].copy(),
                                  yaw_rad=float(yaw_rad[j, q]),
                                  covariance=floored_covariance(cov, rule),
                                  weight=float(weights[i])))
    return out


def match_mixture(cov: np.ndarray, match_prob: float, *, prior_sigma_m: float,
                  prior_yaw_sigma_rad: float, rule: CovarianceRule) -> np.ndarray:
    """Covariance of "right with probability p, else anywhere the prior allows".

    The pose is a two-component mixture: with the match probability p the hypothesis'
    covariance; with 1 - p a wrong place, spread like the prior (position sigma of the
    prior, heading uniform or the prior's). Its covariance (the components share the mean)
    is p cov + (1 - p) prior; ceilings still apply.
    """
    p = float(np.clip(match_prob, 0.0, 1.0))
    wrong = np.diag([prior_sigma_m ** 2, prior_sigma_m ** 2, prior_yaw_sigma_rad ** 2])
    out = p * np.asarray(cov, np.float64) + (1.0 - p) * wrong
    cap = np.array([rule.sigma_ceiling_m, rule.sigma_ceiling_m, rule.yaw_sigma_ceiling_rad])
    scale = np.minimum(1.0, cap / np.sqrt(np.diag(out)))
    return out * np.outer(scale, scale)


def gate_reason(*, xy_m: np.ndarray, prior_xy_m: np.ndarray, prior_sigma_m: float,
                sigma_m: np.ndarray, gate_sigmas: float) -> str:
    """Why a pose is too far from its prior to accept ('' when it is not)."""
    dist = float(np.linalg.norm(np.asarray(xy_m) - np.asarray(prior_xy_m)))
    limit = gate_sigmas * math.hypot(prior_sigma_m, float(np.max(sigma_m)))
    if dist > limit:
        return (f'{dist:.1f} m from the prior, beyond the {limit:.1f} m gate '
                f'({gate_sigmas:g} sigma)')
    return ''


def heading_window(yaw_rad: float | None, yaw_sigma_rad: float | None, *,
                   heading_sigmas: float) -> tuple[float | None, float]:
    """Give the heading prior the decoder gets: (centre or None, half-width <= pi rad).

    A heading without a sigma narrows nothing (half-width pi) but is still passed on.
    """
    if yaw_rad is None:
        return None, math.pi
    return float(yaw_rad), min(math.pi, heading_sigmas * (yaw_sigma_rad or math.pi))
