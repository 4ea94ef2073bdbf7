"""The localize node's /diagnostics: counts, rates, timings, and staleness of its inputs.

The status goes to ERROR when images stop (the newest is older than ``stale_after_s``, on
the steady clock so that a paused bag replay reads as what it is) or the worker died, and to
WARN when valid GNSS fixes or published poses stop, or the last frame was rejected; the
message names each problem and the values say how old each input is.
"""

from __future__ import annotations

from collections import deque
import math
import time

import numpy as np

RATE_WINDOW_S = 5.0


class RateMeter:
    """Messages per second over the last few seconds, and the last one's time (monotonic)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._t: deque[float] = deque()
        self.count = 0
        self.last_s: float | None = None

    def tick(self) -> None:
        self.count += 1
        self.last_s = time.monotonic()
        self._t.append(self.last_s)

    def rate_hz(self) -> float:
        now = time.monotonic()
        while self._t and self._t[0] < now - self.window_s:
            self._t.popleft()
        return len(self._t) / self.window_s


def since_s(t_monotonic: float | None) -> float:
    """Seconds since a monotonic time (NaN for never)."""
    return math.nan if t_monotonic is None else time.monotonic() - t_monotonic


def _fmt(v) -> str:
    if isinstance(v, float):
        return 'nan' if not math.isfinite(v) else f'{v:.4g}'
    return str(v)


class Diagnostics:
    """Publishes the node's state on /diagnostics at ``diagnostics_period_s`` (steady clock)."""

    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.clock import Clock, ClockType
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.node = node
        self.pub = node.create_publisher(DiagnosticArray, '/diagnostics', QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        # on the steady clock: diagnostics keep coming while sim time is paused
        self.timer = node.create_timer(node.params.diagnostics_period_s, self.publish,
                                       clock=Clock(clock_type=ClockType.STEADY_TIME))

    def values(self) -> dict:
        """Everything the diagnostics message reports, as plain values."""
        n = self.node
        out = n.last['output']
        vals = dict(n.counts)
        vals.update({f'{k}_rate_hz': round(m.rate_hz(), 2) for k, m in n.rates.items()})
        vals['last_rejection'] = n.last['reason']
        vals['last_rejection_stamp'] = n.last['reason_stamp']
        vals['last_gnss_rejection'] = n.last['fix_reason']
        vals['last_error'] = n.last['error']
        vals['warmup_ms'] = n.warmup_ms
        for what in ('image', 'gnss_fix', 'pose'):
            vals[f'since_{what}_s'] = round(since_s(n.seen[what]), 3)
        vals.update(n.buffer_values())
        vals.update(n.outputs.values())
        vals.update(debug_images_sent=n.debug.images_sent,
                    debug_markers_sent=n.debug.markers_sent)
        if out is not None:
            vals['last_stamp'] = f'{out.stamp_ns * 1e-9:.3f}'
            vals['last_fix_age_s'] = out.fix_age_s
            vals['candidates'] = out.candidates
            vals['prior_source'] = out.prior_source or 'none'
            vals['score'] = out.score
            if math.isfinite(out.match_prob):
                vals['match_prob'] = out.match_prob
            c = out.covariance
            if np.all(np.isfinite(c)):
                vals['sigma_x_m'] = math.sqrt(c[0, 0])
                vals['sigma_y_m'] = math.sqrt(c[1, 1])
                vals['sigma_yaw_deg'] = math.degrees(math.sqrt(c[2, 2]))
                vals['covariance_xy_yaw'] = ' '.join(f'{v:.4g}' for v in c.ravel())
            for stage, ms in out.timings_ms.items():
                vals[f'time_{stage}_ms'] = ms
        for name, q in (('latency', n._latency_ms), ('processing', n._processing_ms)):
            if q:
                vals[f'{name}_median_ms'] = float(np.median(q))
                vals[f'{name}_p95_ms'] = float(np.percentile(q, 95))
        return vals

    def status(self, vals: dict) -> tuple:
        """(level, message): OK only while images, fixes and poses are all fresh.

        The level is DiagnosticStatus's constant (bytes or int, by ROS distribution), so
        levels compare in their order OK < WARN < ERROR.
        """
        from diagnostic_msgs.msg import DiagnosticStatus as S

        n, p = self.node, self.node.params
        stale = p.stale_after_s
        if not n._worker.is_alive():
            return S.ERROR, 'localization worker stopped'
        if n.counts['received'] == 0:
            return S.WARN, f'no images on {n.image_topic}'
        level, problems = S.OK, []

        def problem(lvl, text: str) -> None:
            nonlocal level
            level = max(level, lvl)
            problems.append(text)

        if vals['since_image_s'] > stale:
            problem(S.ERROR, f'no images on {n.image_topic} for {vals["since_image_s"]:.1f} s')
        fix_s = vals['since_gnss_fix_s']
        if not fix_s <= stale:                                # NaN: no valid fix yet
            problem(S.WARN, f'no valid GNSS fix on {p.gnss_topic} '
                            + ('yet' if math.isnan(fix_s) else f'for {fix_s:.1f} s'))
        pose_s = vals['since_pose_s']
        reason = n.last['reason'] or 'waiting for a frame'
        if not pose_s <= stale:
            problem(S.WARN, ('no pose yet' if math.isnan(pose_s) else
                             f'no pose for {pose_s:.1f} s') + f': {reason}')
        elif not n.last['ok']:
            problem(S.WARN, f'not localized: {reason}')
        return level, '; '.join(problems) or 'localized'

    def publish(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        n = self.node
        vals = self.values()
        st = DiagnosticStatus()
        st.name = f'{n.get_name()}: localization'
        st.hardware_id = 'ciper_ros'
        st.level, st.message = self.status(vals)
        st.values = [KeyValue(key=k, value=_fmt(v)) for k, v in vals.items()]
        arr = DiagnosticArray()
        arr.header.stamp = n.get_clock().now().to_msg()
        arr.status = [st]
        self.pub.publish(arr)
