"""The filter users already run: GNSS + wheel odometry in a 2-D EKF, as robot_localization.

robot_localization (``ekf_node`` in ``two_d_mode`` fusing the wheel odometry's twist, plus
``navsat_transform_node`` turning each NavSatFix into a map-frame position with the fix's
covariance) cannot be installed here; this is the same estimator, written on filterpy's
:class:`~filterpy.kalman.ExtendedKalmanFilter`:

- state ``[x_m, y_m, yaw_rad, v_mps, yaw_rate_rps]`` in the map frame; the motion model is
  robot_localization's omnidirectional model with the lateral velocity held at zero, which
  its ``two_d_mode`` plus a non-holonomic odometry twist amounts to;
- process noise ``process_noise_per_s`` (robot_localization's default
  ``process_noise_covariance`` diagonal for those states) times ``process_noise_scale``,
  integrated over each prediction step (``Q * dt``, as robot_localization does);
- odometry twist updates (``v``, ``yaw_rate``) with ``odom_speed_sigma_mps`` and
  ``odom_yaw_rate_sigma_rps``; GNSS position updates with the fix's reported sigma times
  ``gnss_sigma_scale`` (never below ``gnss_sigma_floor_m``), rejected above
  ``gnss_rejection_mahalanobis`` (robot_localization's ``pose0_rejection_threshold``);
- the heading starts from the GNSS course once the vehicle has driven
  ``init_course_m`` (navsat_transform needs a heading source; the synthetic drives have no
  magnetometer); until then the output is the latest fix with its reported covariance.

:func:`run_gnss_odom_filter` runs it over a drive's streams; :func:`tune_gnss_odom_filter`
searches its noise parameters for its own best result on validation drives (a comparison
is only worth its weakest side). Shapes: odometry rows ``(t_s, v_mps, yaw_rate_rps)``,
fixes ``(t_s, x_m, y_m, reported_sigma_m)`` with NaN ``x_m`` where there was no fix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import itertools
import math

import numpy as np

from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class GnssOdomConfig:
    process_noise_per_s: tuple[float, float, float, float, float] = (
        0.05, 0.05, 0.06, 0.025, 0.02)   # x, y, yaw, v, yaw rate: robot_localization's
    process_noise_scale: float = 1.0
    odom_speed_sigma_mps: float = 0.05
    odom_yaw_rate_sigma_rps: float = 0.005
    gnss_sigma_scale: float = 1.0
    gnss_sigma_floor_m: float = 0.3
    gnss_rejection_mahalanobis: float = math.inf
    init_course_m: float = 15.0


@dataclass(frozen=True)
class FilterTrack:
    """The filter's estimate at every odometry time (n rows).

    ``initialised`` is False while the heading is not yet known (the output is then the
    latest GNSS fix); ``cov_xy`` is (n, 2, 2) m^2, ``yaw_sigma_rad`` (n,).
    """

    t_s: np.ndarray          # (n,)
    xy_m: np.ndarray         # (n, 2)
    yaw_rad: np.ndarray      # (n,)
    cov_xy: np.ndarray       # (n, 2, 2)
    yaw_sigma_rad: np.ndarray  # (n,)
    initialised: np.ndarray  # (n,) bool
    gnss_used: int = 0
    gnss_rejected: int = 0


def _filterpy():
    try:
        from filterpy.kalman import ExtendedKalmanFilter
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise UserError('the GNSS + odometry baseline needs filterpy: '
                        'pip install filterpy') from e
    return ExtendedKalmanFilter


class GnssOdomFilter:
    """One EKF over a drive; feed it in time order (``predict_to`` before each update)."""

    H_ODOM = np.array([[0, 0, 0, 1, 0], [0, 0, 0, 0, 1]], np.float64)
    H_GNSS = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]], np.float64)

    def __init__(self, *, config: GnssOdomConfig | None = None) -> None:
        self.config = config or GnssOdomConfig()
        self.ekf = _filterpy()(dim_x=5, dim_z=2)
        self.t_s: float | None = None
        self.initialised = False
        self.gnss_used = 0
        self.gnss_rejected = 0
        self._last_fix: tuple[np.ndarray, float] | None = None  # (xy, sigma)
        self._anchor: tuple[np.ndarray, float] | None = None  # first fix, odom yaw there
        self._odom_yaw = 0.0          # integrated odometry yaw (relative)
        self._odom_dist = 0.0
        self._v = 0.0
        self._w = 0.0

    # -- prediction -------------------------------------------------------------------
    def predict_to(self, t_s: float) -> None:
        """Integrate the motion model (and the relative odometry) up to ``t_s``."""
        if self.t_s is None:
            self.t_s = t_s
            return
        dt = t_s - self.t_s
        if dt < 0:
            raise UserError(f'the baseline filter got data out of order ({dt:.3f} s back)')
        self.t_s = t_s
        self._odom_yaw += self._w * dt
        self._odom_dist += abs(self._v) * dt
        if not self.initialised or dt == 0:
            return
        ekf = self.ekf
        x, y, yaw, v, w = ekf.x[:, 0]
        c, s = math.cos(yaw), math.sin(yaw)
        ekf.F = np.eye(5)
        ekf.F[0, 2], ekf.F[0, 3] = -v * s * dt, c * dt
        ekf.F[1, 2], ekf.F[1, 3] = v * c * dt, s * dt
        ekf.F[2, 4] = dt
        ekf.Q = np.diag(np.asarray(self.config.process_noise_per_s, np.float64)
                        * self.config.process_noise_scale * dt)
        ekf.x = np.array([[x + v * c * dt], [y + v * s * dt],
                          [math.remainder(yaw + w * dt, math.tau)], [v], [w]])
        ekf.P = ekf.F @ ekf.P @ ekf.F.T + ekf.Q

    # -- updates ----------------------------------------------------------------------
    def update_odometry(self, v_mps: float, yaw_rate_rps: float) -> None:
        self._v, self._w = float(v_mps), float(yaw_rate_rps)
        if not self.initialised:
            return
        cfg = self.config
        r = np.diag([cfg.odom_speed_sigma_mps ** 2, cfg.odom_yaw_rate_sigma_rps ** 2])
        self.ekf.update(np.array([[v_mps], [yaw_rate_rps]]), lambda _x: self.H_ODOM,
                        lambda x: self.H_ODOM @ x, R=r)

    def update_gnss(self, xy_m: np.ndarray, reported_sigma_m: float) -> bool:
        """Fuse one fix; False if the Mahalanobis gate rejected it."""
        cfg = self.config
        xy = np.asarray(xy_m, np.float64).reshape(2)
        sigma = max(float(reported_sigma_m) * cfg.gnss_sigma_scale, cfg.gnss_sigma_floor_m)
        self._last_fix = (xy, sigma)
        if not self.initialised:
            self._try_initialise(xy, sigma)
            return True
        ekf = self.ekf
        r = np.eye(2) * sigma ** 2
        innov = xy[:, None] - ekf.x[:2]
        s = self.H_GNSS @ ekf.P @ self.H_GNSS.T + r
        d = math.sqrt(float((innov.T @ np.linalg.solve(s, innov))[0, 0]))
        if d > cfg.gnss_rejection_mahalanobis:
            self.gnss_rejected += 1
            return False
        ekf.update(xy[:, None], lambda _x: self.H_GNSS, lambda x: self.H_GNSS @ x, R=r)
        ekf.x[2, 0] = math.remainder(ekf.x[2, 0], math.tau)
        self.gnss_used += 1
        return True

    def _try_initialise(self, xy: np.ndarray, sigma: float) -> None:
        if self._anchor is None:
            self._anchor = (xy, self._odom_yaw)
            self._odom_dist = 0.0
            return
        if self._odom_dist < self.config.init_course_m:
            return
        a_xy, a_yaw = self._anchor
        course = math.atan2(xy[1] - a_xy[1], xy[0] - a_xy[0])
        # the chord's direction is the heading halfway through the turn between the fixes
        turned = self._odom_yaw - a_yaw
        yaw = math.remainder(course + turned / 2, math.tau)
        yaw_sigma = min(math.atan2(2 * sigma, self._odom_dist) + abs(turned) / 4, math.pi)
        self.ekf.x = np.array([[xy[0]], [xy[1]], [yaw], [self._v], [self._w]])
        cfg = self.config
        self.ekf.P = np.diag([sigma ** 2, sigma ** 2, yaw_sigma ** 2,
                              cfg.odom_speed_sigma_mps ** 2, cfg.odom_yaw_rate_sigma_rps ** 2])
        self.initialised = True
        self.gnss_used += 1

    # -- output -----------------------------------------------------------------------
    def estimate(self) -> tuple[np.ndarray, float, np.ndarray, float] | None:
        """(xy (2,), yaw, cov_xy (2, 2), yaw_sigma) now, or None before any fix."""
        if self.initialised:
            x, p = self.ekf.x[:, 0], self.ekf.P
            return x[:2].copy(), float(x[2]), p[:2, :2].copy(), math.sqrt(max(p[2, 2], 0.0))
        if self._last_fix is None:
            return None
        xy, sigma = self._last_fix
        return xy.copy(), math.nan, np.eye(2) * sigma ** 2, math.pi


def run_gnss_odom_filter(odom: np.ndarray, fixes: np.ndarray, *,
                         config: GnssOdomConfig | None = None) -> FilterTrack:
    """Run the filter over one drive; the estimate at each odometry time.

    ``odom`` (n, 3) rows ``(t_s, v_mps, yaw_rate_rps)``; ``fixes`` (m, 4) rows
    ``(t_s, x_m, y_m, reported_sigma_m)`` in the map frame, NaN ``x_m`` for no fix. Rows
    before the first fix have NaN positions.
    """
    odom = np.asarray(odom, np.float64)
    fixes = np.asarray(fixes, np.float64)
    if odom.ndim != 2 or odom.shape[1] != 3 or fixes.ndim != 2 or fixes.shape[1] != 4:
        raise UserError(f'the baseline filter wants odometry (n, 3) and fixes (m, 4), got '
                        f'{odom.shape} and {fixes.shape}')
    filt = GnssOdomFilter(config=config)
    events = [(t, 1, i) for i, t in enumerate(odom[:, 0])]
    events += [(t, 0, i) for i, t in enumerate(fixes[:, 0]) if np.isfinite(fixes[i, 1])]
    events.sort()
    n = len(odom)
    xy = np.full((n, 2), np.nan)
    yaw = np.full(n, np.nan)
    cov = np.full((n, 2, 2), np.nan)
    yaw_sigma = np.full(n, np.nan)
    init = np.zeros(n, bool)
    for t, kind, i in events:
        filt.predict_to(float(t))
        if kind == 0:
            filt.update_gnss(fixes[i, 1:3], fixes[i, 3])
            continue
        filt.update_odometry(odom[i, 1], odom[i, 2])
        est = filt.estimate()
        if est is not None:
            xy[i], yaw[i], cov[i], yaw_sigma[i] = est
            init[i] = filt.initialised
    return FilterTrack(t_s=odom[:, 0].copy(), xy_m=xy, yaw_rad=yaw, cov_xy=cov,
                       yaw_sigma_rad=yaw_sigma, initialised=init, gnss_used=filt.gnss_used,
                       gnss_rejected=filt.gnss_rejected)


def track_errors(track: FilterTrack, truth: np.ndarray) -> np.ndarray:
    """Horizontal error (n,) of ``track`` against truth rows ``(t_s, x_m, y_m, ...)``."""
    truth = np.asarray(truth, np.float64)
    tx = np.interp(track.t_s, truth[:, 0], truth[:, 1])
    ty = np.interp(track.t_s, truth[:, 0], truth[:, 2])
    return np.hypot(track.xy_m[:, 0] - tx, track.xy_m[:, 1] - ty)


TUNING_GRID: dict[str, tuple[float, ...]] = {
    'process_noise_scale': (0.03, 0.1, 0.3, 1.0, 3.0),
    'gnss_sigma_scale': (1.0, 2.0, 4.0, 8.0),
    'gnss_rejection_mahalanobis': (math.inf, 5.0, 3.0),
}


def tune_gnss_odom_filter(drives: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *,
                          base: GnssOdomConfig | None = None,
                          grid: dict[str, tuple[float, ...]] | None = None,
                          objective: str = 'mean') -> tuple[GnssOdomConfig, list[dict]]:
    """Grid-search the filter's noise parameters for its lowest error on ``drives``.

    ``drives``: (odom, fixes, truth) per validation drive, shapes as in
    :func:`run_gnss_odom_filter` and truth rows ``(t_s, x_m, y_m, ...)``. ``objective``:
    ``mean`` or ``median`` horizontal error over every initialised estimate. Returns the
    best configuration and one row per grid point (its parameters, mean, median, p95).
    """
    if not drives:
        raise UserError('tuning the baseline filter needs at least one validation drive')
    if objective not in ('mean', 'median'):
        raise UserError(f'unknown tuning objective {objective!r}: mean or median')
    base = base or GnssOdomConfig()
    grid = grid or TUNING_GRID
    names = list(grid)
    rows = []
    for values in itertools.product(*(grid[k] for k in names)):
        cfg = replace(base, **dict(zip(names, values, strict=True)))
        errs = []
        for odom, fixes, truth in drives:
            tr = run_gnss_odom_filter(odom, fixes, config=cfg)
            e = track_errors(tr, truth)
            errs.append(e[tr.initialised & np.isfinite(e)])
        e = np.concatenate(errs)
        rows.append({**dict(zip(names, values, strict=True)),
                     'mean_m': float(np.mean(e)) if len(e) else math.inf,
                     'median_m': float(np.median(e)) if len(e) else math.inf,
                     'p95_m': float(np.percentile(e, 95)) if len(e) else math.inf})
    key = 'mean_m' if objective == 'mean' else 'median_m'
    best = min(rows, key=lambda r: r[key])
    return replace(base, **{k: best[k] for k in names}), rows

