"""Simulated GNSS: an error model per environment, as receivers behave in cities.

A fix is the true position plus four error terms, each a documented parameter of
:class:`GnssConfig`:

- white noise per fix (``sigma_m``, receiver thermal noise and code tracking);
- a first-order Gauss-Markov bias (``bias_sigma_m``, ``bias_tau_s``): atmosphere, orbits
  and clocks left uncorrected by a single-frequency receiver; it wanders over minutes;
- multipath / non-line-of-sight excursions (``multipath_*``): in a street canyon a
  reflected signal pulls the solution 5-30 m to one side for as long as the geometry
  lasts (seconds to a minute), with smooth onset and recovery;
- dropouts (``dropout_*``, ``scheduled_outages_s``): no fix under bridges, in tunnels,
  between tall buildings.

Receivers report a covariance that does not see the multipath: ``reported_sigma_m`` grows
by only ``reported_multipath_gain`` of an excursion, so the published sigma under-states
the error exactly where it matters. :data:`GNSS_PROFILES` names the environments
(``ciper synth drive --gnss-profile``); docs/gnss_profiles.md gives their sources.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math

import numpy as np

from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class GnssConfig:
    """One receiver in one environment (see the module docstring for each term)."""

    name: str = 'white'
    rate_hz: float = 5.0
    sigma_m: float = 3.0            # white noise per axis
    bias_sigma_m: float = 2.0       # stationary std of the bias random walk per axis
    bias_tau_s: float = 60.0        # bias correlation time
    dropout_rate_hz: float = 0.01   # dropouts start this often
    dropout_s: tuple[float, float] = (2.0, 6.0)
    scheduled_outages_s: tuple[tuple[float, float], ...] = ()  # (start, duration) pairs
    multipath_rate_hz: float = 0.0  # excursions start this often (Poisson)
    multipath_m: tuple[float, float] = (5.0, 30.0)   # peak offset, uniform in this range
    multipath_s: tuple[float, float] = (5.0, 60.0)   # duration, uniform in this range
    multipath_ramp_s: float = 3.0   # onset and recovery (raised cosine)
    multipath_turn_deg: float = 30.0  # the pull's direction turns by up to this much
    reported_sigma_m: float | None = None  # covariance published (None: sqrt(sigma^2+bias^2))
    reported_multipath_gain: float = 0.0   # reported sigma grows by this part of an excursion

    @property
    def nominal_sigma_m(self) -> float:
        """The sigma the receiver reports outside any excursion."""
        if self.reported_sigma_m is not None:
            return float(self.reported_sigma_m)
        return math.hypot(self.sigma_m, self.bias_sigma_m)


# Parameters and their sources: docs/gnss_profiles.md.
GNSS_PROFILES: dict[str, GnssConfig] = {
    # the original model: large white noise that any filter averages away
    'white': GnssConfig(),
    # single-frequency automotive receiver under open sky: about 1 m, slowly varying
    'open-sky': GnssConfig(name='open-sky', sigma_m=0.3, bias_sigma_m=0.8, bias_tau_s=300.0,
                           dropout_rate_hz=0.0, reported_sigma_m=1.0),
    # a city: biased by several metres for tens of seconds, multipath excursions of 5-30 m
    # lasting 5-60 s, short dropouts, a reported sigma that barely notices
    'urban': GnssConfig(name='urban', sigma_m=0.8, bias_sigma_m=3.0, bias_tau_s=40.0,
                        dropout_rate_hz=0.005, dropout_s=(2.0, 10.0),
                        multipath_rate_hz=1.0 / 60.0, multipath_m=(5.0, 30.0),
                        multipath_s=(5.0, 60.0), multipath_ramp_s=3.0,
                        reported_sigma_m=2.5, reported_multipath_gain=0.2),
    # open-sky quality between long outages (tunnels, underpasses): isolates the outage
    'outages': GnssConfig(name='outages', sigma_m=0.3, bias_sigma_m=0.8, bias_tau_s=300.0,
                          dropout_rate_hz=1.0 / 150.0, dropout_s=(30.0, 120.0),
                          reported_sigma_m=1.0),
}


def gnss_profile(name: str, **overrides) -> GnssConfig:
    """Return the named profile with fields replaced (``None`` values are ignored)."""
    if name not in GNSS_PROFILES:
        raise UserError(f'unknown GNSS profile {name!r}: choose one of '
                        f"{', '.join(GNSS_PROFILES)}")
    return replace(GNSS_PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class GnssTrack:
    """Simulated receiver output at ``rate_hz``: n fixes, map ENU metres.

    ``fix`` is False during dropouts (``xy_m`` still holds the would-be measurement);
    ``reported_sigma_m`` is what the receiver publishes per axis; ``error_m`` is the true
    error of each measurement, ``multipath_m`` the excursion part of it.
    """

    t_s: np.ndarray               # (n,)
    xy_m: np.ndarray              # (n, 2)
    fix: np.ndarray               # (n,) bool
    reported_sigma_m: np.ndarray  # (n,)
    error_m: np.ndarray           # (n, 2)
    multipath_m: np.ndarray       # (n, 2)


def simulate_gnss(traj, cfg: GnssConfig, rng: np.random.Generator) -> GnssTrack:
    """Sample the receiver along ``traj`` (a :class:`~ciper_ros.synth.drive.Trajectory`).

    Draw order is fixed (bias, white noise, dropouts, then the optional terms), so a
    configuration without multipath reproduces the original ``white`` model's streams.
    """
    dt = 1.0 / cfg.rate_hz
    t = np.arange(0.0, traj.duration_s + 1e-9, dt)
    xy, _, _, _ = traj.at(t)
    phi = math.exp(-dt / cfg.bias_tau_s)
    q = cfg.bias_sigma_m * math.sqrt(1 - phi ** 2)
    bias = np.zeros((len(t), 2))
    bias[0] = rng.normal(0, cfg.bias_sigma_m, 2)
    for i in range(1, len(t)):
        bias[i] = phi * bias[i - 1] + rng.normal(0, q, 2)
    white = rng.normal(0, cfg.sigma_m, (len(t), 2))
    meas = xy + bias + white
    fix = np.ones(len(t), bool)
    i = 0
    while i < len(t):
        if rng.random() < cfg.dropout_rate_hz * dt:
            n = int(rng.uniform(*cfg.dropout_s) / dt)
            fix[i:i + n] = False
            i += n
        i += 1
    for start_s, duration_s in cfg.scheduled_outages_s:
        fix[(t >= start_s) & (t < start_s + duration_s)] = False
    multipath = np.zeros((len(t), 2))
    if cfg.multipath_rate_hz > 0:
        multipath = _multipath(t, cfg, rng)
        meas = meas + multipath
    reported = np.hypot(cfg.nominal_sigma_m,
                        cfg.reported_multipath_gain * np.linalg.norm(multipath, axis=1))
    return GnssTrack(t_s=t, xy_m=meas, fix=fix, reported_sigma_m=reported,
                     error_m=bias + white + multipath, multipath_m=multipath)


def _multipath(t: np.ndarray, cfg: GnssConfig, rng: np.random.Generator) -> np.ndarray:
    """Sum of excursions: Poisson starts, a raised-cosine envelope, a slowly turning pull."""
    out = np.zeros((len(t), 2))
    start = rng.exponential(1.0 / cfg.multipath_rate_hz)
    while start < t[-1]:
        duration = rng.uniform(*cfg.multipath_s)
        peak = rng.uniform(*cfg.multipath_m)
        theta0 = rng.uniform(-math.pi, math.pi)
        turn = math.radians(rng.uniform(-cfg.multipath_turn_deg, cfg.multipath_turn_deg))
        inside = (t >= start) & (t < start + duration)
        u = t[inside] - start
        ramp = max(min(cfg.multipath_ramp_s, duration / 2), 1e-6)
        env = np.minimum(1.0, np.minimum(u, duration - u) / ramp)
        env = 0.5 - 0.5 * np.cos(math.pi * env)
        theta = theta0 + turn * u / duration
        out[inside] += peak * env[:, None] * np.stack([np.cos(theta), np.sin(theta)], -1)
        start += duration + rng.exponential(1.0 / cfg.multipath_rate_hz)
    return out
