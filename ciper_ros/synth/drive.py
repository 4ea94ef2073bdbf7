"""Drives: a vehicle trajectory along the road network and its simulated sensors.

The vehicle keeps to the right lane, rounds corners on a smoothed path, limits its speed by
lateral acceleration in turns and by acceleration/braking limits along the route. Sensors
here: wheel odometry (scale error + yaw-rate bias: drift); GNSS is ``ciper_ros.synth.gnss``.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

from ciper_ros.synth.world import RoadGraph
from ciper_ros.util.errors import UserError


@dataclass(frozen=True)
class Trajectory:
    """Vehicle (base_link) path sampled every ``ds`` metres with its timing."""

    t_s: np.ndarray       # (N,) time at each sample
    xy_m: np.ndarray      # (N, 2) map ENU
    yaw_rad: np.ndarray   # (N,)
    speed_mps: np.ndarray  # (N,)

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1])

    def at(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Interpolated (xy (n, 2), yaw (n,), speed (n,), yaw rate (n,)) at times ``t_s``."""
        t = np.clip(np.asarray(t_s, np.float64), 0.0, self.duration_s)
        x = np.interp(t, self.t_s, self.xy_m[:, 0])
        y = np.interp(t, self.t_s, self.xy_m[:, 1])
        yaw_u = np.unwrap(self.yaw_rad)
        yaw = np.interp(t, self.t_s, yaw_u)
        v = np.interp(t, self.t_s, self.speed_mps)
        rate = np.interp(t, self.t_s, np.gradient(yaw_u, self.t_s))
        return np.stack([x, y], -1), np.angle(np.exp(1j * yaw)), v, rate


def plan_route(graph: RoadGraph, rng: np.random.Generator, *, length_m: float,
               keep_inside_m: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random route along the graph: (points (n, 2) centre line, road width per point).

    At each junction the vehicle prefers going straight, turns otherwise, and only U-turns
    at dead ends. ``keep_inside_m`` avoids edges that leave that half-size square.
    """
    if not graph.edges:
        raise UserError('the road graph has no edges to drive on')
    incident: dict[int, list[int]] = {}
    for e, (a, b) in enumerate(graph.edges):
        incident.setdefault(a, []).append(e)
        incident.setdefault(b, []).append(e)

    def inside(e: int) -> bool:
        return keep_inside_m is None or bool(
            np.all(np.abs(graph.edge_points_m[e]) <= keep_inside_m))

    def oriented(e: int, start: int) -> np.ndarray:
        pts = graph.edge_points_m[e]
        return pts if graph.edges[e][0] == start else pts[::-1]

    candidates = [e for e in range(len(graph.edges)) if inside(e)] or list(range(len(graph.edges)))
    e = int(rng.choice(candidates))
    node = graph.edges[e][0] if rng.random() < 0.5 else graph.edges[e][1]
    pts_all, widths = [], []
    total = 0.0
    while total < length_m:
        pts = oriented(e, node)
        node = graph.edges[e][1] if graph.edges[e][0] == node else graph.edges[e][0]
        pts_all.append(pts if not pts_all else pts[1:])
        widths.append(np.full(len(pts_all[-1]), graph.edge_width_m[e]))
        total += float(np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
        heading = pts[-1] - pts[-2]
        options = [f for f in incident.get(node, []) if f != e and inside(f)]
        if not options:
            options = [e]  # dead end: turn around
        scores = []
        for f in options:
            nxt = oriented(f, node)
            d = nxt[1] - nxt[0]
            cos = float(np.dot(heading, d) / (np.linalg.norm(heading) * np.linalg.norm(d) + 1e-9))
            scores.append(3.0 if cos > 0.9 else 1.0)
        p = np.array(scores) / np.sum(scores)
        e = int(options[rng.choice(len(options), p=p)])
    return np.concatenate(pts_all), np.concatenate(widths)


def drive_trajectory(graph: RoadGraph, rng: np.random.Generator, *, duration_s: float,
                     v_max_mps: float = 12.0, a_lat_mps2: float = 2.0,
                     a_lon_mps2: float = 1.2, b_lon_mps2: float = 2.5, ds_m: float = 0.25,
                     keep_inside_m: float | None = None) -> Trajectory:
    """Plan a drive of ``duration_s`` seconds with realistic speeds and turns."""
    length = duration_s * v_max_mps * 1.2 + 60.0
    centre, width = plan_route(graph, rng, length_m=length, keep_inside_m=keep_inside_m)
    path = _resample(centre, ds_m)
    w = np.interp(np.linspace(0, 1, len(path)), np.linspace(0, 1, len(width)), width)
    # keep right: centre of the right lane between the centre line and the 2 m parking strip
    # (the inner right lane on 4-lane roads)
    d = np.gradient(path, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    lane_off = np.where(w >= 14.0, (w / 2 - 2.0) / 4.0, (w / 2 - 2.0) / 2.0)
    path = path + np.stack([d[:, 1], -d[:, 0]], -1) * lane_off[:, None]
    # round corners: moving average over ~10 m, then resample uniformly again
    k = max(1, int(5.0 / ds_m))
    kern = np.ones(2 * k + 1) / (2 * k + 1)
    padded = np.pad(path, ((k, k), (0, 0)), mode='edge')
    path = np.stack([np.convolve(padded[:, i], kern, mode='valid') for i in range(2)], -1)
    path = _resample(path, ds_m)
    d = np.gradient(path, ds_m, axis=0)
    yaw = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    curvature = np.abs(np.gradient(yaw, ds_m))
    curvature = np.convolve(curvature, np.ones(9) / 9, mode='same')
    v = np.minimum(v_max_mps, np.sqrt(a_lat_mps2 / np.maximum(curvature, 1e-6)))
    v[0] = 0.0
    for i in range(1, len(v)):          # acceleration limit
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + 2 * a_lon_mps2 * ds_m))
    for i in range(len(v) - 2, -1, -1):  # braking limit
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + 2 * b_lon_mps2 * ds_m))
    v_mid = np.maximum((v[1:] + v[:-1]) / 2, 0.3)
    t = np.concatenate([[0.0], np.cumsum(ds_m / v_mid)])
    if t[-1] < duration_s:
        raise UserError(f'route too short for a {duration_s:g} s drive ({t[-1]:.1f} s)')
    # end exactly at duration_s (interpolated last sample)
    n = int(np.searchsorted(t, duration_s, side='right'))
    t_end = np.append(t[:n], duration_s) if t[n - 1] < duration_s else t[:n]
    xy = np.stack([np.interp(t_end, t, path[:, 0]), np.interp(t_end, t, path[:, 1])], -1)
    return Trajectory(t_s=t_end, xy_m=xy,
                      yaw_rad=np.angle(np.exp(1j * np.interp(t_end, t, yaw))),
                      speed_mps=np.interp(t_end, t, v))


def _resample(points: np.ndarray, step_m: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.r_[True, seg > 1e-6]
    points = points[keep]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    n = max(2, int(s[-1] / step_m) + 1)
    q = np.linspace(0.0, (n - 1) * step_m, n)
    return np.stack([np.interp(q, s, points[:, 0]), np.interp(q, s, points[:, 1])], -1)


@dataclass(frozen=True)
class OdomConfig:
    rate_hz: float = 20.0
    scale_error: float = 0.015      # wheel radius error (fraction)
    yaw_rate_bias_dps: float = 0.3  # gyro bias, degrees per second
    speed_sigma_mps: float = 0.05
    yaw_rate_sigma_dps: float = 0.2


def simulate_odometry(traj: Trajectory, cfg: OdomConfig, rng: np.random.Generator):
    """Dead-reckoned odometry from noisy speed and yaw rate: (t, xy, yaw, v, yaw_rate)."""
    dt = 1.0 / cfg.rate_hz
    t = np.arange(0.0, traj.duration_s + 1e-9, dt)
    _, _, v, rate = traj.at(t)
    scale = 1.0 + rng.normal(0, cfg.scale_error)
    bias = math.radians(rng.normal(0, cfg.yaw_rate_bias_dps))
    v_m = v * scale + rng.normal(0, cfg.speed_sigma_mps, len(t)) * (v > 0.05)
    r_m = rate + bias + rng.normal(0, math.radians(cfg.yaw_rate_sigma_dps), len(t))
    yaw = np.concatenate([[0.0], np.cumsum(r_m[:-1] * dt)])
    x = np.concatenate([[0.0], np.cumsum(v_m[:-1] * np.cos(yaw[:-1]) * dt)])
    y = np.concatenate([[0.0], np.cumsum(v_m[:-1] * np.sin(yaw[:-1]) * dt)])
    return t, np.stack([x, y], -1), np.angle(np.exp(1j * yaw)), v_m, r_m
