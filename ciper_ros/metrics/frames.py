"""The per-frame record every tool emits, and the one summary of a set of them.

:class:`FrameRecord` is what one camera frame produced (the node, ``ciper localize``,
``ciper bag eval`` offline and online, the chained evaluation and ``ciper calibrate`` all
build it through ``runtime.pipeline``), plus the truth it is judged by when known. Errors,
NEES and coverage are computed here once; :func:`summarize` names them one way everywhere:
``position_error_m_*``, ``heading_error_deg_*``, ``prior_error_m_*``, ``nees_xy_mean``,
``coverage_95``.

Frames: the estimate is base_link in the map (the tile index's ENU frame); ``camera_*`` is
the camera's own pose as the model found it (what covariance calibration judges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

CHI2_95_2DOF = 5.991464547107979           # the 95 % ellipse of a 2-D Gaussian
CHI2_95_1DOF = 3.841458820694124
CHI2_MEDIAN_2DOF = 1.3862943611198906      # median of chi-square with 2 degrees of freedom
CHI2_MEDIAN_1DOF = 0.4549364231195724
WITHIN_M = (0.5, 1.0, 2.0, 5.0)

_NAN3 = (math.nan,) * 3


def _nan33() -> np.ndarray:
    return np.full((3, 3), np.nan)


def heading_error_deg(yaw_rad: float, truth_yaw_rad: float) -> float:
    """Absolute heading difference in degrees, wrapped to [0, 180]."""
    return abs(math.degrees(math.remainder(yaw_rad - truth_yaw_rad, 2 * math.pi)))


def nees(error: np.ndarray, covariance: np.ndarray) -> float:
    """Normalised estimation error squared e^T S^-1 e (NaN when S is singular or not finite)."""
    e = np.asarray(error, np.float64)
    S = np.asarray(covariance, np.float64)
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(S))):
        return math.nan
    try:
        return float(e @ np.linalg.solve(S, e))
    except np.linalg.LinAlgError:
        return math.nan


@dataclass
class FrameRecord:
    """One camera frame: the estimate (or why there is none), its inputs and its truth."""

    stamp_ns: int
    name: str = ''
    ok: bool = False
    reason: str = ''
    # estimate: base_link in the map frame
    x_m: float = math.nan
    y_m: float = math.nan
    yaw_rad: float = math.nan
    covariance: np.ndarray = field(default_factory=_nan33)     # (x, y, yaw) 3x3
    lat_deg: float = math.nan
    lon_deg: float = math.nan
    # the camera's pose and covariance as the model found them
    camera_xy_yaw: tuple[float, float, float] = _NAN3
    camera_covariance: np.ndarray = field(default_factory=_nan33)
    # every decoded tile's modes as base_link in the map, best first: (xy_m (2,),
    # yaw_rad, covariance (3, 3), weight), weights summing to 1 (what a tracker weighs)
    hypotheses: tuple = ()
    # map -> odom (x_m, y_m, yaw_rad) from odometry at the image stamp, when there was some
    map_to_odom: tuple[float, float, float] | None = None
    mount_source: str = ''
    # inputs
    prior_x_m: float = math.nan
    prior_y_m: float = math.nan
    prior_sigma_m: float = math.nan
    prior_latlon_deg: tuple[float, float] | None = None
    prior_source: str = ''                    # 'gnss', 'tracker', 'given', or '' (none)
    fix_age_s: float = math.nan
    score: float = math.nan
    match_prob: float = math.nan              # calibrated "this is a match" (v2 models)
    candidates: int = 0
    candidate_tiles: tuple[int, ...] = ()     # tile ids decoded, best retrieval first
    tile_id: int = -1
    timings_ms: dict = field(default_factory=dict)
    latency_ms: float = math.nan
    # truth (base_link in the map frame), when known
    truth_x_m: float = math.nan
    truth_y_m: float = math.nan
    truth_yaw_rad: float = math.nan
    truth_camera_xy_yaw: tuple[float, float, float] = _NAN3
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------- derived, computed once
    @property
    def xy_m(self) -> np.ndarray:
        return np.array([self.x_m, self.y_m])

    @property
    def has_truth(self) -> bool:
        return math.isfinite(self.truth_x_m) and math.isfinite(self.truth_y_m)

    @property
    def position_error_m(self) -> float:
        return math.hypot(self.x_m - self.truth_x_m, self.y_m - self.truth_y_m)

    @property
    def heading_error_deg(self) -> float:
        return heading_error_deg(self.yaw_rad, self.truth_yaw_rad)

    @property
    def prior_error_m(self) -> float:
        return math.hypot(self.prior_x_m - self.truth_x_m, self.prior_y_m - self.truth_y_m)

    @property
    def nees_xy(self) -> float:
        e = np.array([self.x_m - self.truth_x_m, self.y_m - self.truth_y_m])
        return nees(e, np.asarray(self.covariance)[:2, :2])

    def camera_nees(self) -> tuple[float, float]:
        """(position NEES, heading NEES) of the camera pose against the camera's truth."""
        (x, y, yaw), (tx, ty, tyaw) = self.camera_xy_yaw, self.truth_camera_xy_yaw
        c = np.asarray(self.camera_covariance)
        dyaw = math.remainder(yaw - tyaw, 2 * math.pi)
        return nees(np.array([x - tx, y - ty]), c[:2, :2]), dyaw ** 2 / c[2, 2]

    def sigmas(self) -> tuple[float, float, float]:
        """(sigma_x_m, sigma_y_m, sigma_yaw_rad); NaN where the covariance is not finite."""
        d = np.diag(np.asarray(self.covariance, np.float64))
        return tuple(math.sqrt(max(v, 0.0)) if math.isfinite(v) else math.nan for v in d)

    def row(self) -> dict:
        """Flat values for CSV / JSON (one column set for every tool)."""
        sx, sy, syaw = self.sigmas()
        out = {'name': self.name, 'stamp_ns': self.stamp_ns, 'ok': self.ok,
               'reason': self.reason, 'x_m': self.x_m, 'y_m': self.y_m,
               'yaw_rad': self.yaw_rad, 'lat_deg': self.lat_deg, 'lon_deg': self.lon_deg,
               'sigma_x_m': sx, 'sigma_y_m': sy, 'sigma_yaw_rad': syaw,
               'score': self.score, 'match_prob': self.match_prob,
               'candidates': self.candidates, 'tile_id': self.tile_id,
               'prior_x_m': self.prior_x_m, 'prior_y_m': self.prior_y_m,
               'prior_sigma_m': self.prior_sigma_m, 'fix_age_s': self.fix_age_s,
               'total_ms': self.timings_ms.get('total', math.nan),
               'latency_ms': self.latency_ms,
               'truth_x_m': self.truth_x_m, 'truth_y_m': self.truth_y_m,
               'truth_yaw_rad': self.truth_yaw_rad}
        truth = self.has_truth
        ok = self.ok and math.isfinite(self.x_m)
        out['position_error_m'] = self.position_error_m if truth and ok else math.nan
        out['heading_error_deg'] = self.heading_error_deg if truth and ok else math.nan
        out['prior_error_m'] = self.prior_error_m if truth else math.nan
        out['nees_xy'] = self.nees_xy if truth and ok else math.nan
        return out


COLUMNS = tuple(FrameRecord(stamp_ns=0).row())


def _stats(values, prefix: str) -> dict:
    v = np.asarray([x for x in values if math.isfinite(x)], np.float64)
    if not len(v):
        return {}
    return {f'{prefix}_median': float(np.median(v)), f'{prefix}_p95': float(np.percentile(v, 95)),
            f'{prefix}_mean': float(v.mean()), f'{prefix}_max': float(v.max())}


def summarize(records: list[FrameRecord]) -> dict:
    """Headline numbers: errors over localized frames with truth, the prior's on the same.

    ``prior_error_m_*`` is the GNSS prior's own error over every frame that had one;
    ``prior_error_m_localized_*`` the same over the frames we localized (a fair comparison).
    """
    ok = [r for r in records if r.ok and math.isfinite(r.x_m)]
    judged = [r for r in ok if r.has_truth]
    out = {'frames': len(records), 'localized': len(ok),
           'localized_fraction': len(ok) / max(len(records), 1)}
    reasons: dict[str, int] = {}
    for r in records:
        if not r.ok:
            key = str(r.reason).split(':')[0][:60] or 'unknown'
            reasons[key] = reasons.get(key, 0) + 1
    out['not_localized_reasons'] = reasons
    err = np.array([r.position_error_m for r in judged])
    out |= _stats(err, 'position_error_m')
    for m in WITHIN_M:
        if len(err):
            out[f'position_within_{m:g}m'] = float(np.mean(err <= m))
    out |= _stats([r.heading_error_deg for r in judged], 'heading_error_deg')
    out |= _stats([r.prior_error_m for r in records if r.has_truth], 'prior_error_m')
    out |= {k.replace('prior_error_m', 'prior_error_m_localized'): v for k, v in
            _stats([r.prior_error_m for r in judged], 'prior_error_m').items()}
    n = np.array([r.nees_xy for r in judged])
    n = n[np.isfinite(n)]
    if len(n):
        out['nees_xy_mean'] = float(n.mean())                     # ideal 2
        out['coverage_95'] = float(np.mean(n <= CHI2_95_2DOF))    # ideal 0.95
    out |= _stats([r.latency_ms for r in ok], 'latency_ms')
    out |= _stats([r.timings_ms.get('pipeline', math.nan) for r in records], 'processing_ms')
    if out.get('prior_error_m_localized_median') and 'position_error_m_median' in out:
        out['error_vs_prior_median_ratio'] = (out['position_error_m_median']
                                              / out['prior_error_m_localized_median'])
    return out
