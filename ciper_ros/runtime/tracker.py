"""Tracking over a drive: a particle filter over (x, y, yaw) of base_link in the map frame.

ROS-free; the node (or an offline evaluation) feeds it:

- :meth:`Tracker.predict` with each odometry increment (base_link motion between two
  odometry poses, in the earlier pose's frame), with noise proportional to the motion
  (``trans_noise_per_m``, ``rot_noise_per_rad``, ``rot_noise_per_m``) plus a floor per second;
- :meth:`Tracker.update_frame` with each frame's localization: its pose and covariance,
  weighted by the frame's match probability ``p`` -- the likelihood of a particle is
  ``(1 - p) + p * N(particle; pose, cov) * V`` relative to a wrong frame's flat density
  over the outlier volume ``V`` (``outlier_sigma_m``: where a wrong tile can put a pose),
  so a non-matching frame moves nothing, and a wrong tile with a low ``p`` little;
- :meth:`Tracker.update_gnss` with each fix: a Student-t on the horizontal distance
  (``gnss_nu`` degrees of freedom), heavy-tailed so a 20 m multipath excursion that the
  frames contradict cannot drag the estimate.
- :meth:`Tracker.update_course` with a GNSS course (the bearing between two fixes against
  the odometry between them; :class:`DriveTracker` makes one per ``course_baseline_m``
  driven): a Student-t on each particle's heading.

Resampling is systematic when the effective sample size drops below
``resample_fraction`` of the particles, with a small jitter. Divergence: when
``diverge_frames`` confident frames in a row (match probability >= ``diverge_min_prob``)
all lie outside the filter's 99.9 % region and agree with each other (moved along by
odometry: one place, seen again), the filter re-initialises on the latest frame's
hypotheses (a kidnapped vehicle, or a wrong start); when GNSS has been outside it for
``gnss_diverge_s`` and no frame agreed with the filter meanwhile, or farther than
``gnss_far_m`` for ``gnss_far_s`` whatever the frames say, around the fix (odometry alone
drifted away, or frames searched around a lost filter follow it); when two courses in a row
say it faces the wrong way, at the fix facing the course; :attr:`Tracker.reinits` counts
them all. The gates are the published covariance's (``spread_scale``: the cloud is tighter
than its errors).
Shapes: ``xy_m`` (2,), covariance (3, 3) in (x m, y m, yaw rad).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math
from typing import NamedTuple

import numpy as np

from ciper_ros.geo.heading import wrap_angle_rad as _wrap
from ciper_ros.geo.se2 import SE2
from ciper_ros.util.errors import UserError

CHI2_3_999 = 16.27            # chi-square, 3 degrees of freedom, 99.9 %
CHI2_2_999 = 13.82            # chi-square, 2 degrees of freedom, 99.9 %


class _Hypothesis(NamedTuple):
    """One frame hypothesis, checked and floored, with what its density needs."""

    xy_m: np.ndarray             # (2,)
    yaw_rad: float
    cov: np.ndarray              # (3, 3), floors added
    inv: np.ndarray              # (3, 3)
    logdet: float
    weight: float


@dataclass(frozen=True)
class TrackerConfig:
    particles: int = 1000
    trans_noise_per_m: float = 0.05       # along-track sigma per metre driven
    lateral_noise_per_m: float = 0.02     # across-track sigma per metre driven
    rot_noise_per_rad: float = 0.05       # heading sigma per radian turned
    rot_noise_per_m: float = 0.01         # heading sigma per metre driven (gyro bias)
    pos_noise_per_sqrt_s: float = 0.05    # random walk floor (m / sqrt s)
    yaw_noise_per_sqrt_s: float = 0.01    # random walk floor (rad / sqrt s)
    frame_sigma_floor_m: float = 1.0      # a frame's covariance is never tighter than this
    #                                       (bench/tune_tracker.py on the validation drive)
    frame_yaw_sigma_floor_rad: float = math.radians(0.5)
    outlier_sigma_m: float = 10.0         # where a wrong frame lands: the prior's spread
    # likelihood tempering: successive frames (and fixes) err alike where they were taken
    # (the model's error at a place, the GNSS bias), so each counts as this part of an
    # independent measurement; 1 trusts them as independent (an overconfident cloud)
    frame_power: float = 1.0
    gnss_power: float = 0.3               # successive fixes share their bias (urban GNSS)
    gnss_nu: float = 3.0                  # Student-t degrees of freedom of a GNSS fix
    gnss_sigma_scale: float = 1.0         # times the fix's reported sigma
    resample_fraction: float = 0.5
    jitter_m: float = 0.02
    jitter_rad: float = math.radians(0.1)
    diverge_frames: int = 5
    diverge_min_prob: float = 0.5
    gnss_diverge_s: float = 20.0          # GNSS outside the 99.9 % region this long, with no
    #                                       frame agreeing meanwhile: re-initialise on it
    gnss_far_m: float = 50.0              # GNSS this far off (beyond multipath's reach: the
    gnss_far_s: float = 10.0              # urban profile's 30 m plus bias) this long
    #                                       re-initialises on it even while frames agree
    #                                       (frames searched around a lost filter follow it)
    gnss_reinit_sigma_m: float = 5.0
    gnss_reinit_yaw_sigma_rad: float = math.radians(20.0)   # at least: the heading drifted too
    # GNSS course: the bearing between two fixes against the odometry between them says
    # which way the vehicle faces (a forward camera alone can mistake the road's direction;
    # the bias cancels over a few seconds); Student-t like a fix
    course_nu: float = 3.0
    course_sigma_floor_rad: float = math.radians(3.0)
    course_diverge: int = 2               # courses in a row outside the honest heading gate,
    course_diverge_min_rad: float = math.radians(45.0)   # at least this far, agreeing with
    #                                       each other: re-initialise on the course's heading
    seed: int = 0

    def __post_init__(self) -> None:
        if self.particles < 10:
            raise UserError(f'the tracker needs at least 10 particles, got {self.particles}')
        if not 0.0 < self.resample_fraction <= 1.0:
            raise UserError(f'resample_fraction must be in (0, 1], got '
                            f'{self.resample_fraction}')
        for name in ('frame_power', 'gnss_power'):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise UserError(f'{name} must be in (0, 1], got {getattr(self, name)}')


@dataclass(frozen=True)
class TrackEstimate:
    """The filter's mean and covariance (x, y, yaw) and its health."""

    xy_m: np.ndarray          # (2,)
    yaw_rad: float
    covariance: np.ndarray    # (3, 3)
    ess: float                # effective sample size (particles)
    reinits: int


class Tracker:
    """A particle filter over base_link's (x, y, yaw) in the map frame."""

    def __init__(self, *, config: TrackerConfig | None = None,
                 spread_scale: tuple[float, float] = (1.0, 1.0)) -> None:
        self.cfg = config or TrackerConfig()
        # how much the cloud's spread understates its error (position, heading variance):
        # the divergence gates ask whether a frame or fix disagrees with the honest
        # covariance, not the cloud's (frames err alike where they were taken)
        self.spread_scale = tuple(float(v) for v in spread_scale)
        if not all(math.isfinite(v) and v > 0 for v in self.spread_scale):
            raise UserError(f'spread_scale must be positive, got {spread_scale}')
        self.rng = np.random.default_rng(self.cfg.seed)
        self.x = np.zeros((0, 3))             # (N, 3) particles
        self.logw = np.zeros(0)               # (N,) log weights
        self.reinits = 0
        self.gnss_reinits = 0
        self._disagree: list[_Hypothesis] = []     # top hypotheses of disagreeing frames,
        #                                            moved along by odometry
        self._gnss_off_since: float | None = None     # GNSS disagreeing since (s)
        self._gnss_agree = 0                          # fixes agreeing in a row
        self._gnss_far_since: float | None = None     # GNSS beyond gnss_far_m since (s)
        self._frame_support_s = -math.inf             # last frame agreeing with the filter
        self.course_reinits = 0
        self._course_off: list[float] = []            # heading offsets of disagreeing courses
        c = self.cfg
        self._log_outlier_volume = (math.log(2 * math.pi * math.e * c.outlier_sigma_m ** 2)
                                    + math.log(2 * math.pi))

    @property
    def initialised(self) -> bool:
        return len(self.x) > 0

    # ------------------------------------------------------------------ initialisation
    def initialise(self, xy_m, sigma_m: float, yaw_rad: float | None = None,
                   yaw_sigma_rad: float | None = None) -> None:
        """Spread the particles around ``xy_m`` (sigma ``sigma_m``); yaw uniform if None."""
        xy = np.asarray(xy_m, np.float64).reshape(2)
        if not (np.isfinite(xy).all() and math.isfinite(sigma_m) and sigma_m > 0):
            raise UserError(f'tracker initialisation needs a finite position and a positive '
                            f'sigma, got {xy} and {sigma_m}')
        n = self.cfg.particles
        self.x = np.empty((n, 3))
        self.x[:, :2] = xy + self.rng.normal(0.0, sigma_m, (n, 2))
        if yaw_rad is None or not math.isfinite(yaw_rad):
            self.x[:, 2] = self.rng.uniform(-math.pi, math.pi, n)
        else:
            s = yaw_sigma_rad if yaw_sigma_rad and math.isfinite(yaw_sigma_rad) else 0.1
            self.x[:, 2] = _wrap(yaw_rad + self.rng.normal(0.0, s, n))
        self.logw = np.full(n, -math.log(n))
        self._disagree = []
        self._gnss_off_since = None

    def initialise_from_covariance(self, xy_m, yaw_rad: float, covariance) -> None:
        """Spread the particles by a full (3, 3) covariance (``/initialpose``, a frame)."""
        c = np.asarray(covariance, np.float64).reshape(3, 3)
        c = (c + c.T) / 2 + np.diag([1e-4, 1e-4, 1e-6])
        try:
            L = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise UserError('tracker initialisation: the covariance is not positive '
                            'definite') from None
        n = self.cfg.particles
        mean = np.array([*np.asarray(xy_m, np.float64).reshape(2), float(yaw_rad)])
        if not np.isfinite(mean).all():
            raise UserError(f'tracker initialisation needs a finite pose, got {mean}')
        self.x = mean + self.rng.standard_normal((n, 3)) @ L.T
        self.x[:, 2] = _wrap(self.x[:, 2])
        self.logw = np.full(n, -math.log(n))
        self._disagree = []

    def _initialise_from_mixture(self, hyps: list[_Hypothesis]) -> None:
        """Particles drawn from the hypotheses, as many from each as its share of weight.

        A frame without a prior (a kidnapped vehicle) names several places; the filter keeps
        them all until odometry and the next frames tell them apart.
        """
        n = self.cfg.particles
        w = np.array([h.weight for h in hyps], np.float64)
        counts = np.floor(w / w.sum() * n).astype(int)
        counts[int(np.argmax(w))] += n - int(counts.sum())
        parts = []
        for h, k in zip(hyps, counts, strict=True):
            if k:
                L = np.linalg.cholesky(h.cov)
                parts.append(np.array([*h.xy_m, h.yaw_rad])
                             + self.rng.standard_normal((k, 3)) @ L.T)
        self.x = np.concatenate(parts)
        self.x[:, 2] = _wrap(self.x[:, 2])
        self.logw = np.full(n, -math.log(n))
        self._disagree = []

    # ------------------------------------------------------------------ prediction
    def predict(self, dx_m: float, dy_m: float, dyaw_rad: float, dt_s: float) -> None:
        """Move every particle by an odometry increment (base_link frame), with noise."""
        if not self.initialised:
            return
        c = self.cfg
        n = len(self.x)
        dist = math.hypot(dx_m, dy_m)
        s_along = c.trans_noise_per_m * dist + c.pos_noise_per_sqrt_s * math.sqrt(max(dt_s, 0))
        s_lat = c.lateral_noise_per_m * dist + c.pos_noise_per_sqrt_s * math.sqrt(max(dt_s, 0))
        s_yaw = (c.rot_noise_per_rad * abs(dyaw_rad) + c.rot_noise_per_m * dist
                 + c.yaw_noise_per_sqrt_s * math.sqrt(max(dt_s, 0)))
        if self._disagree:                       # where those frames put the vehicle now
            d = SE2(dx_m, dy_m, dyaw_rad)
            moved = []
            for h in self._disagree:
                T = SE2(float(h.xy_m[0]), float(h.xy_m[1]), h.yaw_rad) @ d
                cov = h.cov + np.diag([s_along ** 2, s_lat ** 2, s_yaw ** 2])
                moved.append(h._replace(xy_m=T.xy_m, yaw_rad=T.yaw_rad, cov=cov))
            self._disagree = moved
        ux = dx_m + self.rng.normal(0.0, 1.0, n) * s_along * (dx_m / dist if dist else 1.0)
        uy = dy_m + self.rng.normal(0.0, 1.0, n) * s_lat
        yaw = self.x[:, 2]
        cy, sy = np.cos(yaw), np.sin(yaw)
        self.x[:, 0] += cy * ux - sy * uy
        self.x[:, 1] += sy * ux + cy * uy
        self.x[:, 2] = _wrap(yaw + dyaw_rad + self.rng.normal(0.0, s_yaw, n))

    # ------------------------------------------------------------------ updates
    def update_frame(self, xy_m, yaw_rad: float, covariance, match_prob: float, *,
                     t_s: float | None = None) -> bool:
        """Weigh by one frame's pose; True when it was used. Re-initialises on divergence.

        ``t_s``: the frame's time (for the GNSS divergence rule: a frame that agrees with
        the filter vouches for it). One hypothesis of :meth:`update_hypotheses`.
        """
        return self.update_hypotheses([(xy_m, yaw_rad, covariance, 1.0)], match_prob, t_s=t_s)

    def update_hypotheses(self, hypotheses, match_prob: float, *,
                          t_s: float | None = None) -> bool:
        """Weigh by one frame's pose hypotheses (a mixture); True when any was used.

        ``hypotheses``: (xy_m (2,), yaw_rad, covariance (3, 3), weight) each, e.g. a frame's
        top-K poses weighted by their scores; weights are normalised over the valid ones
        (non-finite or non-positive ones are dropped). The first valid hypothesis with the
        largest weight initialises the filter (and re-initialises it when, frame after frame,
        no hypothesis agrees with it).
        """
        c = self.cfg
        valid = []
        for xy_m, yaw_rad, covariance, weight in hypotheses:
            xy = np.asarray(xy_m, np.float64).reshape(2)
            cov = np.asarray(covariance, np.float64).reshape(3, 3)
            w = float(weight)
            if not (np.isfinite(xy).all() and math.isfinite(yaw_rad) and np.isfinite(cov).all()
                    and math.isfinite(w) and w > 0):
                continue
            cov = (cov + cov.T) / 2
            cov[:2, :2] += np.eye(2) * c.frame_sigma_floor_m ** 2
            cov[2, 2] += c.frame_yaw_sigma_floor_rad ** 2
            try:
                inv = np.linalg.inv(cov)
                sign, logdet = np.linalg.slogdet(cov)
            except np.linalg.LinAlgError:
                continue
            if sign <= 0:
                continue
            valid.append(_Hypothesis(xy, float(yaw_rad), cov, inv, float(logdet), w))
        if not valid:
            return False
        p = float(match_prob) if math.isfinite(match_prob) else 0.5
        top = max(valid, key=lambda h: h.weight)
        if not self.initialised:
            self._initialise_from_mixture(valid)
            return True
        total = sum(h.weight for h in valid)
        e = np.empty_like(self.x)
        log_mix = np.full(len(self.x), -np.inf)
        for h in valid:
            e[:, :2] = self.x[:, :2] - h.xy_m
            e[:, 2] = _wrap(self.x[:, 2] - h.yaw_rad)
            m = np.einsum('ni,ij,nj->n', e, h.inv, e)
            log_mix = np.logaddexp(log_mix,
                                   math.log(h.weight / total) - 0.5 * m - 0.5 * h.logdet)
        # a wrong frame lands anywhere a wrong tile can put it: a flat density over
        # the outlier volume (2 pi e sigma_out^2 in position, 2 pi in heading); the
        # likelihood relative to it is (1 - p) + p * sum_k w_k N(e; cov_k) * volume
        log_gauss = log_mix - 1.5 * math.log(2 * math.pi) + self._log_outlier_volume
        like = np.logaddexp(math.log(max(1.0 - p, 1e-12)), math.log(max(p, 1e-12)) + log_gauss)
        self._reweigh(c.frame_power * like)
        self._check_divergence(valid, top, p, t_s)
        return True

    def update_gnss(self, xy_m, sigma_m: float, *, t_s: float | None = None) -> bool:
        """Weigh by one GNSS fix (Student-t on the horizontal distance); True when used.

        With ``t_s``: a fix outside the filter's 99.9 % region for ``gnss_diverge_s``
        while no frame agreed with the filter re-initialises it around the fix (heading
        kept): odometry alone has drifted, or the start was wrong, and a multipath
        excursion that long with no frame to contradict it is the lesser risk. A fix farther
        than ``gnss_far_m`` for ``gnss_far_s`` re-initialises it even while frames agree:
        no multipath reaches that far, and frames searched around a lost filter follow it.
        """
        xy = np.asarray(xy_m, np.float64).reshape(2)
        if not (self.initialised and np.isfinite(xy).all() and math.isfinite(sigma_m)
                and sigma_m > 0):
            return False
        s = sigma_m * self.cfg.gnss_sigma_scale
        if t_s is not None and self._gnss_diverged(xy, s, float(t_s)):
            return True
        nu = self.cfg.gnss_nu
        d2 = np.sum((self.x[:, :2] - xy) ** 2, axis=1) / (s * s)
        self._reweigh(-self.cfg.gnss_power * (nu + 2.0) / 2.0 * np.log1p(d2 / nu))
        return True

    def update_course(self, course_rad: float, body_bearing_rad: float, sigma_rad: float, *,
                      xy_m=None, sigma_m: float | None = None,
                      diverge: int | None = None) -> bool | None:
        """Weigh headings by a GNSS course; True when it agreed, False when not, None unused.

        ``course_rad``: the map bearing from an earlier fix to the latest; ``body_bearing_rad``:
        the bearing of the same displacement by odometry, in base_link's frame now, so a
        particle of heading ``yaw`` predicts ``yaw + body_bearing_rad``; ``sigma_rad``: the
        course's uncertainty (the fixes' sigma over the distance). ``course_diverge``
        courses in a row that disagree with the estimate's honest heading sigma by at least
        ``course_diverge_min_rad``, with the same offset, re-initialise at the latest fix
        (``xy_m``, ``sigma_m``) facing the course: the filter locked on the wrong direction.
        ``diverge``: that many instead (1 while no course has confirmed the heading yet).
        """
        if not (self.initialised and math.isfinite(course_rad)
                and math.isfinite(body_bearing_rad) and math.isfinite(sigma_rad)
                and sigma_rad > 0):
            return None
        c = self.cfg
        s = max(float(sigma_rad), c.course_sigma_floor_rad)
        heading = _wrap(course_rad - body_bearing_rad)      # the course's base_link heading
        est = self.estimate()
        off = float(_wrap(est.yaw_rad - heading))
        gate = 3.0 * math.sqrt(s * s + self._gate_covariance(est)[2, 2])
        agreed = abs(off) <= max(gate, c.course_diverge_min_rad)
        if not agreed:
            if self._course_off and abs(_wrap(off - self._course_off[-1])) > 2.0 * gate:
                self._course_off = []
            self._course_off.append(off)
            if len(self._course_off) >= (diverge or c.course_diverge) and xy_m is not None:
                sig = max(c.gnss_reinit_sigma_m, float(sigma_m or 0.0))
                self.initialise_from_covariance(
                    np.asarray(xy_m, np.float64).reshape(2), heading,
                    np.diag([sig * sig, sig * sig, s * s]))
                self.reinits += 1
                self.course_reinits += 1
                self._course_off = []
                return True                   # facing the course now
        else:
            self._course_off = []
        nu = c.course_nu
        e = _wrap(self.x[:, 2] - heading) / s
        self._reweigh(-(nu + 1.0) / 2.0 * np.log1p(e * e / nu))
        return agreed

    def _reweigh(self, loglike: np.ndarray) -> None:
        lw = self.logw + loglike
        lw -= np.logaddexp.reduce(lw)
        self.logw = lw
        if self.ess() < self.cfg.resample_fraction * len(self.x):
            self._resample()

    def _resample(self) -> None:
        n = len(self.x)
        w = np.exp(self.logw)
        cum = np.cumsum(w)
        cum[-1] = 1.0
        idx = np.searchsorted(cum, (self.rng.random() + np.arange(n)) / n)
        self.x = self.x[idx]
        self.x[:, :2] += self.rng.normal(0.0, self.cfg.jitter_m, (n, 2))
        self.x[:, 2] = _wrap(self.x[:, 2] + self.rng.normal(0.0, self.cfg.jitter_rad, n))
        self.logw = np.full(n, -math.log(n))

    def _check_divergence(self, hyps: list[_Hypothesis], top: _Hypothesis, p, t_s) -> None:
        """Count frames none of whose hypotheses agrees with the filter.

        After ``diverge_frames`` of them in a row, re-initialise at ``top``.
        """
        c = self.cfg
        est = self.estimate()
        cov = self._gate_covariance(est)
        m = math.inf
        for h in hyps:
            e = np.array([*(h.xy_m - est.xy_m), _wrap(h.yaw_rad - est.yaw_rad)])
            m = min(m, float(e @ np.linalg.solve(h.cov + cov, e)))
        if m <= CHI2_3_999 and t_s is not None:
            self._frame_support_s = float(t_s)
        if p < c.diverge_min_prob:
            return
        if m <= CHI2_3_999:
            self._disagree = []
            return
        self._disagree = [*self._disagree, top][-c.diverge_frames:]
        if len(self._disagree) >= c.diverge_frames and self._consistent(self._disagree):
            self._initialise_from_mixture(hyps)
            self.reinits += 1

    def _gate_covariance(self, est: TrackEstimate) -> np.ndarray:
        """Give the estimate's covariance times :attr:`spread_scale` (the divergence gates')."""
        sp, sy = self.spread_scale
        s = np.sqrt([sp, sp, sy])
        return est.covariance * np.outer(s, s)

    @staticmethod
    def _consistent(hyps: list[_Hypothesis]) -> bool:
        """Tell whether frames (moved to now) agree with the latest: one place, seen again.

        A kidnapped vehicle's frames keep naming the same new place; a camera's wrong
        frames (a forward view along a road, a look-alike block) scatter.
        """
        last = hyps[-1]
        for h in hyps[:-1]:
            e = np.array([*(h.xy_m - last.xy_m), _wrap(h.yaw_rad - last.yaw_rad)])
            if float(e @ np.linalg.solve(h.cov + last.cov, e)) > CHI2_3_999:
                return False
        return True

    def _gnss_diverged(self, xy, s, t_s) -> bool:
        c = self.cfg
        est = self.estimate()
        e = xy - est.xy_m
        if math.hypot(*e) > c.gnss_far_m:
            if self._gnss_far_since is None:
                self._gnss_far_since = t_s
            elif t_s - self._gnss_far_since >= c.gnss_far_s:
                self._reinit_on_fix(xy, s, est)
                return True
        else:
            self._gnss_far_since = None
        m = float(e @ np.linalg.solve(self._gate_covariance(est)[:2, :2] + np.eye(2) * s * s,
                                      e))
        if m <= CHI2_2_999:             # agreeing: three in a row end the episode
            self._gnss_agree += 1
            if self._gnss_agree >= 3:
                self._gnss_off_since = None
            return False
        self._gnss_agree = 0
        if self._gnss_off_since is None or self._frame_support_s >= self._gnss_off_since:
            self._gnss_off_since = t_s if self._gnss_off_since is None else \
                max(self._gnss_off_since, self._frame_support_s)
            return False
        if t_s - self._gnss_off_since < c.gnss_diverge_s:
            return False
        self._reinit_on_fix(xy, s, est)
        return True

    def _reinit_on_fix(self, xy, s: float, est: TrackEstimate) -> None:
        """Re-initialise around a fix, the heading kept (at least its re-init sigma)."""
        c = self.cfg
        sig = max(c.gnss_reinit_sigma_m, s)
        yaw_sigma = max(math.sqrt(max(float(est.covariance[2, 2]), 0.0)),
                        c.gnss_reinit_yaw_sigma_rad)
        self.initialise_from_covariance(xy, est.yaw_rad,
                                        np.diag([sig * sig, sig * sig, yaw_sigma ** 2]))
        self.reinits += 1
        self.gnss_reinits += 1
        self._gnss_off_since = self._gnss_far_since = None

    # ------------------------------------------------------------------ output
    def ess(self) -> float:
        """Effective sample size ``1 / sum w^2``."""
        return float(1.0 / np.sum(np.exp(2 * self.logw))) if self.initialised else 0.0

    def estimate(self) -> TrackEstimate:
        """Weighted mean (circular for yaw) and covariance of the particles."""
        if not self.initialised:
            raise UserError('the tracker has no estimate before it is initialised')
        w = np.exp(self.logw)
        mu_xy = w @ self.x[:, :2]
        yaw = math.atan2(float(w @ np.sin(self.x[:, 2])), float(w @ np.cos(self.x[:, 2])))
        d = np.empty_like(self.x)
        d[:, :2] = self.x[:, :2] - mu_xy
        d[:, 2] = _wrap(self.x[:, 2] - yaw)
        cov = (d * w[:, None]).T @ d
        return TrackEstimate(xy_m=mu_xy, yaw_rad=yaw, covariance=cov, ess=self.ess(),
                             reinits=self.reinits)


def odometry_increment(prev, cur) -> tuple[float, float, float]:
    """Give base_link's motion (dx, dy, dyaw) from odometry pose ``prev`` to ``cur``.

    In ``prev``'s frame; poses are (x_m, y_m, yaw_rad) in the odom frame.
    """
    d = SE2(*prev).inv() @ SE2(*cur)
    return d.x_m, d.y_m, math.remainder(d.yaw_rad, 2 * math.pi)


@dataclass(frozen=True)
class DriveTrackerConfig:
    """How the drive tracker starts, what it hands the next frame and when it has settled."""

    init_sigma_floor_m: float = 3.0        # a start from a GNSS fix: at least this spread
    settled_sigma_m: float = 5.0           # position sigma below which the tracker is the
    #                                        next frame's prior (else GNSS, or none)
    prior_sigma_floor_m: float = 3.0       # the tracker's prior is never tighter than this:
    prior_yaw_sigma_floor_rad: float = math.radians(3.0)   # frames must be able to disagree
    odom_horizon_s: float = 30.0           # odometry kept to move late measurements
    # the published covariance (estimate, estimate_at) is the particles' spread times these:
    # the cloud is tighter than its errors (frames and fixes err alike where they were
    # taken); fitted on a validation drive so the 95 % ellipse holds 95 % of errors
    output_cov_scale: float = 47.0         # position variances (bench/tune_tracker.py:
    output_yaw_cov_scale: float = 5.07     # heading variance    validation city 500, urban)
    odom_max_gap_s: float = 1.0            # between two odometry messages interpolated
    course_baseline_m: float = 15.0        # GNSS course: fixes this far apart by odometry,
    course_max_s: float = 10.0             # at most this long apart (the bias must cancel)

    def __post_init__(self) -> None:
        for name in ('output_cov_scale', 'output_yaw_cov_scale'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise UserError(f'{name} must be a positive number, got {v}')


class DriveTracker:
    """The tracker fed a drive's streams: odometry, GNSS fixes, frames, resets (thread-safe).

    The one driver the node and the offline tools share (through
    :class:`~ciper_ros.runtime.pipeline.FramePipeline`). The filter lives at the latest
    odometry stamp; a frame or fix stamped earlier (it waited for the model) is moved to
    that time by the odometry between the two stamps, and a prior asked for an earlier
    stamp is moved back, so a frame's latency costs no accuracy.

    It initialises from the first GNSS fix (spread by its sigma, at least
    ``init_sigma_floor_m``, heading unknown) or, without one, from the first frame's
    hypotheses (a kidnapped vehicle: all of them, by weight). :meth:`relocalize` forgets
    the state and ignores GNSS until frames searched over the whole map have settled it;
    :meth:`set_pose` is ``/initialpose``.
    """

    def __init__(self, *, config: TrackerConfig | None = None,
                 drive: DriveTrackerConfig | None = None) -> None:
        import threading

        from ciper_ros.runtime.sensors import OdometryBuffer

        self.cfg = drive or DriveTrackerConfig()
        self.tracker = self._new_tracker(config)
        self.odometry = OdometryBuffer(max_gap_s=self.cfg.odom_max_gap_s,
                                       tolerance_s=self.cfg.odom_max_gap_s,
                                       horizon_s=self.cfg.odom_horizon_s)
        self._lock = threading.RLock()
        self._odom: tuple[int, float, float, float] | None = None
        self._course_from: tuple[int, np.ndarray, float] | None = None   # (stamp, xy, sigma)
        # started from a fix, the heading is what the first frames said until a GNSS course
        # agrees: till then the tracker is no frame's prior (a forward camera can take the
        # road's other direction, and frames searched around the tracker would follow it)
        self._heading_known = False
        self._started_from_fix = False
        self.searching = False              # relocalize asked; GNSS ignored until settled
        self.frames_used = self.fixes_used = self.relocalizations = self.pose_resets = 0

    def _new_tracker(self, config: TrackerConfig | None) -> Tracker:
        # the divergence gates use the published (honest) covariance
        return Tracker(config=config, spread_scale=(self.cfg.output_cov_scale,
                                                    self.cfg.output_yaw_cov_scale))

    # ------------------------------------------------------------------ state
    @property
    def initialised(self) -> bool:
        return self.tracker.initialised

    @property
    def time_ns(self) -> int | None:
        """The stamp the filter is at (the latest odometry), None before any."""
        return None if self._odom is None else self._odom[0]

    def settled(self) -> bool:
        """Tell whether it is the frames' prior: within ``settled_sigma_m``, heading known.

        Its heading is known from ``/initialpose``, from frames alone (a drive started
        without GNSS, a relocalization) or, started from a fix, once a GNSS course agreed.
        """
        with self._lock:
            if not self.tracker.initialised:
                return False
            if self._started_from_fix and not (self._heading_known or self.searching):
                return False
            cov = self.tracker.estimate().covariance[:2, :2]
            return math.sqrt(float(np.linalg.eigvalsh(cov)[-1])) <= self.cfg.settled_sigma_m

    def reset(self) -> None:
        """Forget everything (the clock went back: the odometry is void)."""
        with self._lock:
            self.tracker = self._new_tracker(self.tracker.cfg)
            self.odometry.clear()
            self._odom = None
            self._course_from = None
            self._heading_known = self._started_from_fix = False
            self.searching = False

    def relocalize(self) -> None:
        """Start over from frames alone: no state, GNSS ignored until frames settle it."""
        with self._lock:
            self.tracker = self._new_tracker(self.tracker.cfg)
            self._heading_known = self._started_from_fix = False
            self.searching = True
            self.relocalizations += 1

    # ------------------------------------------------------------------ motion
    def _motion(self, from_ns: int, to_ns: int) -> SE2 | None:
        """base_link's motion from ``from_ns`` to ``to_ns`` (in its frame at ``from_ns``)."""
        if from_ns == to_ns:
            return SE2(0.0, 0.0, 0.0)
        a, b = self.odometry.at(from_ns), self.odometry.at(to_ns)
        if a is None or b is None:
            return None
        return a.inv() @ b

    def _to_filter_time(self, stamp_ns: int, xy, yaw_rad: float, cov):
        """Move a pose (and 3x3 covariance) at ``stamp_ns`` to the filter's time.

        Unchanged when the stamp is at or after the latest odometry (nothing to move by) or
        odometry does not reach back to it.
        """
        now = self.time_ns
        if now is None or stamp_ns >= now:
            return np.asarray(xy, np.float64), float(yaw_rad), cov
        d = self._motion(int(stamp_ns), now)
        if d is None:
            return np.asarray(xy, np.float64), float(yaw_rad), cov
        T = SE2(float(xy[0]), float(xy[1]), float(yaw_rad)) @ d
        if cov is not None:
            # first order: heading uncertainty swings the moved position by the lever arm
            lever = T.xy_m - np.asarray(xy, np.float64)
            J = np.eye(3)
            J[0, 2], J[1, 2] = -lever[1], lever[0]
            cov = J @ np.asarray(cov, np.float64) @ J.T
        return T.xy_m, T.yaw_rad, cov

    def add_odometry(self, stamp_ns: int, x_m: float, y_m: float,
                     yaw_rad: float) -> TrackEstimate | None:
        """Predict with the increment since the last odometry; the estimate after it."""
        if not all(math.isfinite(v) for v in (x_m, y_m, yaw_rad)):
            return None
        with self._lock:
            stamp_ns = int(stamp_ns)
            if self._odom is not None and stamp_ns <= self._odom[0]:
                return None                    # a repeat or out of order: nothing new
            self.odometry.add(stamp_ns, SE2(float(x_m), float(y_m), float(yaw_rad),
                                            parent='odom', child='base_link'))
            if self._odom is not None:
                t0, *prev = self._odom
                self.tracker.predict(*odometry_increment(prev, (x_m, y_m, yaw_rad)),
                                     (stamp_ns - t0) * 1e-9)
            self._odom = (stamp_ns, float(x_m), float(y_m), float(yaw_rad))
            return self.estimate()

    # ------------------------------------------------------------------ measurements
    def add_fix(self, stamp_ns: int, xy_m, sigma_m: float) -> bool:
        """Weigh by a GNSS fix (map frame); True when used (never while relocalizing)."""
        xy = np.asarray(xy_m, np.float64).reshape(2)
        if not (np.isfinite(xy).all() and math.isfinite(sigma_m) and sigma_m > 0):
            return False
        with self._lock:
            if self.searching:
                return False
            if not self.tracker.initialised:
                self.tracker.initialise(xy, max(float(sigma_m), self.cfg.init_sigma_floor_m))
                self.fixes_used += 1
                self._course_from = (int(stamp_ns), xy, float(sigma_m))
                self._started_from_fix, self._heading_known = True, False
                return True
            self._course(int(stamp_ns), xy, float(sigma_m))
            yaw = self.tracker.estimate().yaw_rad
            moved, _, _ = self._to_filter_time(int(stamp_ns), xy, yaw, None)
            used = self.tracker.update_gnss(moved, float(sigma_m), t_s=stamp_ns * 1e-9)
            self.fixes_used += int(used)
            return used

    def _course(self, stamp_ns: int, xy: np.ndarray, sigma_m: float) -> None:
        """Weigh by the GNSS course from the course's first fix to this one, when far enough.

        The two fixes' bearing in map against the same displacement by odometry, in
        base_link's frame at the filter's time; one course per ``course_baseline_m`` driven
        (successive courses share no fix, so each counts fully).
        """
        c = self.cfg
        start = self._course_from
        if start is None or stamp_ns <= start[0] \
                or (stamp_ns - start[0]) * 1e-9 > c.course_max_s:
            self._course_from = (stamp_ns, xy, sigma_m)
            return
        d = self._motion(start[0], stamp_ns)
        now = self.time_ns
        tail = self._motion(stamp_ns, now) if now is not None and now > stamp_ns else \
            SE2(0.0, 0.0, 0.0)
        if d is None or tail is None:
            self._course_from = (stamp_ns, xy, sigma_m)
            return
        dist = math.hypot(d.x_m, d.y_m)
        if dist < c.course_baseline_m:
            return
        g = xy - start[1]
        course = math.atan2(g[1], g[0])
        # the displacement's bearing in the frame at the later fix, then at the filter's time
        at_fix = math.atan2(d.y_m, d.x_m) - d.yaw_rad
        body = at_fix - tail.yaw_rad
        sigma = math.hypot(start[2], sigma_m) * self.tracker.cfg.gnss_sigma_scale / dist
        moved, _, _ = self._to_filter_time(stamp_ns, xy, course - at_fix, None)
        reinits = self.tracker.course_reinits
        # before any course confirmed it, the heading is only the first frames' word: one
        # course that contradicts it is enough
        agreed = self.tracker.update_course(course, body, sigma, xy_m=moved, sigma_m=sigma_m,
                                            diverge=None if self._heading_known else 1)
        if agreed or self.tracker.course_reinits > reinits:
            self._heading_known = True
        self._course_from = (stamp_ns, xy, sigma_m)

    def add_frame(self, stamp_ns: int, hypotheses, match_prob: float) -> bool:
        """Weigh by a frame's hypotheses (xy_m, yaw_rad, covariance, weight), map frame."""
        with self._lock:
            moved = []
            for xy, yaw, cov, w in hypotheses:
                if not (np.isfinite(np.asarray(xy, np.float64)).all() and math.isfinite(yaw)
                        and np.isfinite(np.asarray(cov, np.float64)).all()):
                    continue
                moved.append((*self._to_filter_time(int(stamp_ns), xy, yaw, cov), w))
            used = self.tracker.update_hypotheses(moved, match_prob, t_s=stamp_ns * 1e-9)
            self.frames_used += int(used)
            if self.searching and self.settled():
                self.searching = False         # frames alone found it: GNSS is welcome again
            return used

    def set_pose(self, stamp_ns: int, xy_m, yaw_rad: float, covariance) -> None:
        """Re-initialise around a given pose (``/initialpose``), moved to the filter's time."""
        with self._lock:
            xy, yaw, cov = self._to_filter_time(int(stamp_ns), np.asarray(xy_m, np.float64),
                                                float(yaw_rad), covariance)
            self.tracker.initialise_from_covariance(xy, yaw, cov)
            self.searching = False
            self._heading_known = True
            self.pose_resets += 1

    # ------------------------------------------------------------------ output
    def _published(self, est: TrackEstimate) -> TrackEstimate:
        c = self.cfg
        if c.output_cov_scale == 1.0 and c.output_yaw_cov_scale == 1.0:
            return est
        s = np.sqrt([c.output_cov_scale, c.output_cov_scale, c.output_yaw_cov_scale])
        return replace(est, covariance=est.covariance * np.outer(s, s))

    def estimate(self) -> TrackEstimate | None:
        """Give the estimate at the filter's time (covariance scaled for publishing)."""
        with self._lock:
            return self._published(self.tracker.estimate()) if self.tracker.initialised \
                else None

    def estimate_at(self, stamp_ns: int) -> TrackEstimate | None:
        """Give the estimate moved to ``stamp_ns`` (a frame's, earlier than the filter's)."""
        with self._lock:
            est = self._filter_estimate_at(stamp_ns)
            return None if est is None else self._published(est)

    def _filter_estimate_at(self, stamp_ns: int) -> TrackEstimate | None:
        """Give the particles' own estimate (unscaled covariance) moved to ``stamp_ns``."""
        with self._lock:
            if not self.tracker.initialised:
                return None
            est = self.tracker.estimate()
            now = self.time_ns
            if now is None or stamp_ns >= now:
                return est
            d = self._motion(now, int(stamp_ns))
            if d is None:
                return est
            T = SE2(float(est.xy_m[0]), float(est.xy_m[1]), est.yaw_rad) @ d
            return replace(est, xy_m=T.xy_m, yaw_rad=T.yaw_rad)

    def particles_at(self, stamp_ns: int, *, max_n: int | None = None) -> np.ndarray:
        """Give (N, 3) particles (x_m, y_m, yaw_rad) moved to ``stamp_ns``; (0, 3) before any.

        ``max_n``: at most this many, drawn by weight (for display).
        """
        with self._lock:
            x = self.tracker.x
            if not len(x):
                return np.zeros((0, 3))
            if max_n is not None and len(x) > max_n:
                w = np.exp(self.tracker.logw)
                pick = np.random.default_rng(0).choice(len(x), size=max_n, p=w / w.sum())
                x = x[pick]
            x = x.copy()
            now = self.time_ns
            d = None if now is None or stamp_ns >= now else self._motion(now, int(stamp_ns))
        if d is not None:                      # each particle moved by the same body motion
            c, s = np.cos(x[:, 2]), np.sin(x[:, 2])
            x[:, 0] += c * d.x_m - s * d.y_m
            x[:, 1] += s * d.x_m + c * d.y_m
            x[:, 2] = _wrap(x[:, 2] + d.yaw_rad)
        return x

    def prior_at(self, stamp_ns: int) -> tuple[np.ndarray, float, float, float] | None:
        """(xy_m, sigma_m, yaw_rad, yaw_sigma_rad) for a frame at ``stamp_ns``, floored.

        None unless settled (and not relocalizing): then the frame takes GNSS, or searches.
        """
        with self._lock:
            if self.searching or not self.settled():
                return None
            est = self._filter_estimate_at(stamp_ns)     # the filter's spread, not the
            #                                              published one: the frame's gate
            c = self.cfg
            sigma = max(math.sqrt(float(np.linalg.eigvalsh(est.covariance[:2, :2])[-1])),
                        c.prior_sigma_floor_m)
            yaw_sigma = max(math.sqrt(max(float(est.covariance[2, 2]), 0.0)),
                            c.prior_yaw_sigma_floor_rad)
            return est.xy_m, sigma, est.yaw_rad, yaw_sigma

    def status(self) -> dict:
        """For diagnostics: the state, its spread and what it has used."""
        with self._lock:
            est = self.estimate()
            mode = ('relocalizing' if self.searching else 'uninitialised' if est is None
                    else 'tracking' if self.settled() else 'converging')
            out = {'tracker': mode, 'tracker_reinits': self.tracker.reinits,
                   'tracker_gnss_reinits': self.tracker.gnss_reinits,
                   'tracker_course_reinits': self.tracker.course_reinits,
                   'tracker_frames_used': self.frames_used,
                   'tracker_fixes_used': self.fixes_used,
                   'tracker_relocalizations': self.relocalizations,
                   'tracker_pose_resets': self.pose_resets}
            if est is not None:
                out['tracker_sigma_m'] = round(math.sqrt(float(
                    np.linalg.eigvalsh(est.covariance[:2, :2])[-1])), 3)
                out['tracker_yaw_sigma_deg'] = round(math.degrees(math.sqrt(max(
                    float(est.covariance[2, 2]), 0.0))), 3)
                out['tracker_ess'] = round(est.ess, 1)
            return out
