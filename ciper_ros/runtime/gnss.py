"""GNSS fixes -> the prior of one camera frame: one policy for the node and offline tools.

The node, ``ciper localize`` on a bag and ``ciper bag eval`` all choose priors here, so an
online run and an offline run of the same bag use the same prior for the same frame.

Rule: of the valid fixes buffered, the one nearest the image stamp *at or before it* (a later
fix may not have arrived yet when a live node processes the frame: using it offline would
make the two disagree). It is refused when older than ``max_fix_age_s``; its sigma grows
with its age by ``max_speed_mps`` (how far the vehicle may have driven since) and a prior
broader than ``max_prior_sigma_m`` is refused (measured: retrieval alone cannot yet choose
among that many tiles). Fixes with NO_FIX status, NaN or out-of-range coordinates, or bad
covariance are never buffered; the reason is kept for diagnostics.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
import math

import numpy as np

from ciper_ros.runtime.localizer import Prior
from ciper_ros.runtime.stamped import StampedBuffer

DEFAULT_FIX_SIGMA_M = 5.0        # when a fix reports no covariance
# sensor_msgs/NavSatStatus: STATUS_UNKNOWN (-2, Jazzy and later), STATUS_NO_FIX (-1)
FIX_STATUS_NAMES = {-2: 'STATUS_UNKNOWN', -1: 'STATUS_NO_FIX'}


def navsatfix_to_prior(msg, *, default_sigma_m: float = DEFAULT_FIX_SIGMA_M):
    """(Prior, None) from a sensor_msgs/NavSatFix, or (None, reason) when it cannot be one.

    Rejected: status below STATUS_FIX (NO_FIX, UNKNOWN), non-finite or out-of-range
    latitude/longitude, a non-finite or negative covariance. The prior's sigma is the larger
    horizontal standard deviation of the reported covariance (``default_sigma_m`` when its
    type is UNKNOWN).
    """
    status = int(msg.status.status)
    if status < 0:
        name = FIX_STATUS_NAMES.get(status, 'below STATUS_FIX')
        return None, f'GNSS status is {name} ({status})'
    lat, lon = float(msg.latitude), float(msg.longitude)
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None, f'GNSS fix lat/lon invalid ({lat}, {lon})'
    if int(msg.position_covariance_type) == 0:
        sigma = default_sigma_m
    else:
        cov = np.asarray(msg.position_covariance, np.float64)
        if cov.size != 9 or not np.all(np.isfinite(cov)) or cov[0] < 0 or cov[4] < 0:
            return None, 'GNSS fix covariance is not finite and non-negative'
        sigma = max(math.sqrt(max(cov[0], cov[4])), 0.1)
    return Prior(lat, lon, sigma_m=sigma), None


@dataclass(frozen=True)
class FixPolicy:
    max_fix_age_s: float = 1.0
    default_fix_sigma_m: float = 5.0      # when a fix reports no covariance
    max_speed_mps: float = 15.0           # sigma growth with the age of the fix
    max_prior_sigma_m: float = 15.0
    horizon_s: float = 60.0               # fixes kept this long behind the newest


class FixBuffer(StampedBuffer):
    """Time-ordered valid GNSS fixes; :meth:`prior_at` picks one for an image stamp.

    Thread-safe: the node adds fixes on its executor thread and reads priors on its worker.
    """

    def __init__(self, policy: FixPolicy = FixPolicy()) -> None:
        super().__init__(horizon_s=policy.horizon_s)
        self.policy = policy
        self.last_rejection = ''
        self.last_added: Prior | None = None      # the fix just buffered, as a prior
        self.received = self.rejected = 0

    def add(self, stamp_ns: int, msg) -> str | None:
        """Buffer a sensor_msgs/NavSatFix; return why it was refused, or None."""
        self.received += 1
        prior, why = navsatfix_to_prior(msg, default_sigma_m=self.policy.default_fix_sigma_m)
        if prior is None:
            self.rejected += 1
            self.last_rejection = why
            return why
        self.horizon_ns = int(self.policy.horizon_s * 1e9)    # the policy may change at run time
        self._add(stamp_ns, prior)
        self.last_added = prior
        return None

    def prior_at(self, stamp_ns: int) -> tuple[Prior | None, str, float]:
        """(prior, reason when None, age of the fix in s (NaN without one))."""
        pol = self.policy
        with self._lock:
            k = bisect_right(self._t, stamp_ns) - 1
            if k < 0:
                return None, 'no GNSS fix at or before the image stamp', math.nan
            t = self._t[k]
            p = self._v[t]
        age_s = (stamp_ns - t) * 1e-9
        if age_s > pol.max_fix_age_s:
            return None, (f'GNSS fix is stale: {age_s:.2f} s older than the image '
                          f'(max_fix_age_s {pol.max_fix_age_s:g})'), age_s
        sigma = math.hypot(p.sigma_m, pol.max_speed_mps * age_s)
        if sigma > pol.max_prior_sigma_m:
            return None, (f'prior too uncertain: sigma {sigma:.1f} m > max_prior_sigma_m '
                          f'{pol.max_prior_sigma_m:g}'), age_s
        return Prior(p.lat_deg, p.lon_deg, sigma_m=sigma), '', age_s
