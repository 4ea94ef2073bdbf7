"""Tracker benchmark: what tracking adds to a frame, at the node's default particle count.

The node's setting: a 10 Hz camera, odometry at 50 Hz, GNSS at 5 Hz, ``top_k`` 9 (one
hypothesis per decoded tile). Per camera frame the drive tracker takes one frame update
(nine hypotheses), five odometry predictions and half a fix; that sum is the tracker's
cost per frame (target: <= 3 ms on this CPU). Baseline in the same run: the Localizer's
own per-frame time on a small synthetic city with the shipped model (what a frame costs
without tracking), so ``tracker_share_of_frame`` says what tracking adds.
"""

from __future__ import annotations

import math
from pathlib import Path
import tempfile
import time

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / 'models' / 'ciper_t_synthetic.pt'
TARGET_MS = 3.0


def _tracker_ms(particles: int, frames: int = 200) -> dict:
    from ciper_ros.runtime.tracker import DriveTracker, TrackerConfig

    rng = np.random.default_rng(0)
    dt = DriveTracker(config=TrackerConfig(particles=particles))
    t_ns, x, yaw = 1_000_000_000, 0.0, 0.3
    dt.add_odometry(t_ns, 0.0, 0.0, yaw)
    dt.add_fix(t_ns, np.array([0.0, 0.0]), 3.0)
    per = {'frame': [], 'odometry': [], 'fix': []}
    for i in range(frames):
        for _ in range(5):                   # 50 Hz odometry, 10 m/s
            t_ns += 20_000_000
            x += 0.2
            a = time.perf_counter()
            dt.add_odometry(t_ns, x * math.cos(yaw), x * math.sin(yaw), yaw)
            per['odometry'].append(time.perf_counter() - a)
        truth = np.array([x * math.cos(yaw), x * math.sin(yaw)])
        if i % 2 == 0:
            a = time.perf_counter()
            dt.add_fix(t_ns, truth + rng.normal(0, 3.0, 2), 3.0)
            per['fix'].append(time.perf_counter() - a)
        cov = np.diag([1.0, 1.0, math.radians(2.0) ** 2])
        hyps = [(truth + (rng.normal(0, 1.0, 2) if k == 0 else rng.normal(0, 25.0, 2)),
                 yaw + float(rng.normal(0, 0.05)), cov, (0.6 if k == 0 else 0.05))
                for k in range(9)]
        a = time.perf_counter()
        dt.add_frame(t_ns - 50_000_000, hyps, 0.9)       # the frame waited 50 ms
        dt.estimate()
        per['frame'].append(time.perf_counter() - a)
    ms = {k: 1e3 * float(np.median(v)) for k, v in per.items()}
    ms['per_camera_frame'] = ms['frame'] + 5 * ms['odometry'] + 0.5 * ms['fix']
    return {k: round(v, 4) for k, v in ms.items()}


def _localizer_ms(frames: int = 20) -> float:
    from ciper_ros.experiments.localization_eval import localize_city, open_city_localizer
    from ciper_ros.synth.folder import write_city_folder
    from ciper_ros.synth.world import CityConfig

    with tempfile.TemporaryDirectory() as d:
        city = Path(d) / 'city'
        write_city_folder(city, CityConfig(seed=7, size_m=300.0), zooms=(19,), progress=False)
        loc, world = open_city_localizer(model=MODEL, city=city, index_dir=Path(d) / 'index',
                                         progress=False)
        _, rows = localize_city(loc, world, n=frames, prior_sigma_m=10.0, progress=False)
    return float(np.median([r.timings_ms['pipeline'] for r in rows[2:]]))


def run() -> dict:
    out = {'particles': {}}
    for n in (300, 1000, 3000):
        out['particles'][str(n)] = _tracker_ms(n)
    default = out['particles']['1000']['per_camera_frame']
    loc = _localizer_ms()
    out.update({'default_particles': 1000, 'tracker_ms_per_frame': default,
                'target_ms': TARGET_MS, 'meets_target': default <= TARGET_MS,
                'baseline_localizer_ms_per_frame': round(loc, 2),
                'tracker_share_of_frame': round(default / loc, 4)})
    return out


if __name__ == '__main__':
    import json
    import sys

    sys.path.insert(0, str(REPO))
    print(json.dumps(run(), indent=2))
