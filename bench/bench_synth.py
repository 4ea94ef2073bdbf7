"""Synthetic city benchmark: generation time, memory of a 3 km city, rendering throughput.

Targets (issue: synthetic city): >= 200 panoramas 64x256 per second per core and >= 100
pinhole images 128x256 per second per core, with both cores busy; a 1 km city generated in
under 30 s; a 3 km city in under 2 GiB. Per-core throughput is measured with one process
and with two concurrent processes (the 2-core machine fully busy).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np

RENDER_CITY = {'seed': 101, 'size_m': 600.0}
N_FRAMES = 300


def _render_worker(kind: str, n: int, queue) -> None:
    from ciper_ros.geo.camera import PinholeCamera
    from ciper_ros.synth.city import generate_city
    from ciper_ros.synth.pairs import sample_road_pose
    from ciper_ros.synth.render import CameraPose, GroundRenderer
    from ciper_ros.synth.world import CityConfig

    world = generate_city(CityConfig(**RENDER_CITY))
    renderer = GroundRenderer(world, epoch=1)
    rng = np.random.default_rng(0)
    poses = []
    for _ in range(n):
        xy, yaw = sample_road_pose(world, rng, margin_m=40.0)
        poses.append(CameraPose(xy[0], xy[1], yaw))
    cam = PinholeCamera.from_hfov(256, 128, 90.0)

    def one(p):
        if kind == 'panorama':
            return renderer.panorama(p, width=256, height=64)
        return renderer.pinhole(p, cam)
    for p in poses[:5]:
        one(p)
    t0 = time.perf_counter()
    for p in poses:
        one(p)
    queue.put(n / (time.perf_counter() - t0))


def _throughput(kind: str, processes: int) -> float:
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    procs = [ctx.Process(target=_render_worker, args=(kind, N_FRAMES, q))
             for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return float(np.mean(rates))


MEMORY_SCRIPT = """
import resource, sys, time, json
from ciper_ros.synth.city import generate_city
from ciper_ros.synth.world import CityConfig
t0 = time.perf_counter()
w = generate_city(CityConfig(seed=102, size_m={size}, res_m={res}))
dt = time.perf_counter() - t0
w.car_layer(0)
layers = w.height_m.nbytes + w.kind.nbytes + w.obj.nbytes
print(json.dumps({{'seconds': dt, 'peak_rss_mib': resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, 'world_layers_mib': layers / 2 ** 20,
    'buildings': int(w.n_buildings)}}))
"""


def _generate(size_m: float, res_m: float) -> dict:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT.format(size=size_m, res=res_m)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> dict:
    gen_1km = _generate(1000.0, 0.2)
    gen_3km = _generate(3000.0, 0.25)
    result = {
        'city_1km_res0.2': {**gen_1km, 'target_s': 30.0, 'meets_target': gen_1km['seconds'] < 30},
        'city_3km_res0.25': {**gen_3km, 'target_peak_rss_mib': 2048,
                             'meets_target': gen_3km['peak_rss_mib'] < 2048},
    }
    for kind, target in (('panorama', 200.0), ('pinhole', 100.0)):
        one = _throughput(kind, 1)
        two = _throughput(kind, 2)
        size = '64x256' if kind == 'panorama' else '128x256 (90 deg)'
        result[f'render_{kind}'] = {
            'image': size, 'frames': N_FRAMES, 'per_core_fps_1_process': round(one, 1),
            'per_core_fps_2_processes': round(two, 1), 'target_per_core_fps': target,
            'ratio_to_target_both_cores_busy': round(two / target, 2),
            'meets_target': two >= target}
    return result
