"""Runtime benchmark: index build, per-frame Localizer latency by stage, the tile cache.

A held-out synthetic city (400 m, test-split seed 3), an index built with the shipped model
(or ``CIPER_BENCH_MODEL``), a 12 s drive at 5 frames/s with simulated GNSS as the prior.
Per-frame latency, stage by stage, for the torch and onnxruntime backends at the node's
default ``top_k`` (what users run) and at 3; the cache's speed-up is the same drive with the
cache off (baseline) and on, in the same run. Target: 30 ms median per frame at the default
configuration with the faster backend (issue 14).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import tempfile
import time

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get('CIPER_BENCH_MODEL') or REPO / 'models' / 'ciper_t_synthetic.pt')
FPS = 5.0
TARGET_MS = 30.0


def _dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob('*') if f.is_file())


def _drive(world, seed: int = 0):
    from ciper_ros.synth.drive import drive_trajectory
    from ciper_ros.synth.gnss import GnssConfig, simulate_gnss
    from ciper_ros.synth.render import CameraPose, GroundRenderer

    rng = np.random.default_rng(seed)
    traj = drive_trajectory(world.roads, rng, duration_s=12.0,
                            keep_inside_m=world.config.size_m / 2 - 50.0)
    t = np.arange(0.0, traj.duration_s, 1.0 / FPS)
    xy, yaw, _, _ = traj.at(t)
    gcfg = GnssConfig(rate_hz=FPS, dropout_rate_hz=0.0)
    gnss_xy = simulate_gnss(traj, gcfg, rng).xy_m
    n = min(len(t), len(gnss_xy))
    renderer = GroundRenderer(world, epoch=0)
    frames = [renderer.panorama(CameraPose(xy[i, 0], xy[i, 1], yaw[i]), width=256, height=64)
              for i in range(n)]
    sigma = float(np.hypot(gcfg.sigma_m, gcfg.bias_sigma_m))
    return frames, xy[:n], yaw[:n], gnss_xy[:n], sigma


def _run(loc, world, frames, xy, gnss_xy, sigma) -> dict:
    from ciper_ros.runtime.localizer import Prior

    plane = loc.index.plane
    times, err, prior_err = [], [], []
    for i, img in enumerate(frames):
        ll = world.plane.latlon_from_xy_m(gnss_xy[i][None])[0]
        res = loc.localize(img, Prior(ll[0], ll[1], sigma_m=sigma))
        true_xy = plane.xy_m_from_latlon(world.plane.latlon_from_xy_m(xy[i][None]))[0]
        err.append(float(np.linalg.norm(res.xy_m - true_xy)))
        prior_err.append(float(np.linalg.norm(gnss_xy[i] - xy[i])))
        if i >= 3:                                   # first frames: warm-up
            times.append(res.timings_ms)
    stages = {k: round(float(np.median([t[k] for t in times])), 2) for k in times[0]}
    total = np.array([t['total'] for t in times])
    return {'frames': len(frames), 'stage_median_ms': stages,
            'total_ms_median': round(float(np.median(total)), 2),
            'total_ms_p95': round(float(np.percentile(total, 95)), 2),
            'position_error_m_median': round(float(np.median(err)), 2),
            'prior_error_m_median': round(float(np.median(prior_err)), 2),
            'cache_hits': loc.cache.hits, 'cache_misses': loc.cache.misses}


def run() -> dict:
    import torch

    from ciper_ros.maps.open import open_store
    from ciper_ros.runtime.backends import make_backend
    from ciper_ros.runtime.export import export_onnx
    from ciper_ros.runtime.index import build_index, TileIndex
    from ciper_ros.runtime.localizer import Localizer, LocalizerConfig
    from ciper_ros.synth.folder import city_paths, write_city_folder
    from ciper_ros.synth.world import CityConfig, World

    tmp = Path(tempfile.mkdtemp(prefix='ciper_bench_runtime_'))
    try:
        write_city_folder(tmp / 'city', CityConfig(seed=3, size_m=400.0), zooms=(19,),
                          progress=False)
        world_path, map_path = city_paths(tmp / 'city')
        t0 = time.perf_counter()
        build_index(map_path=map_path, model_path=MODEL, out_dir=tmp / 'index',
                    progress=False)
        build_s = time.perf_counter() - t0
        index = TileIndex(tmp / 'index', model_path=MODEL)
        export_onnx(MODEL, tmp / 'onnx')
        world = World.load(world_path)
        frames, xy, _, gnss_xy, sigma = _drive(world)
        default_k = LocalizerConfig().top_k
        out = {'torch_threads': torch.get_num_threads(), 'model': str(MODEL),
               'default_top_k': default_k,
               'index': {'tiles': len(index), 'build_s': round(build_s, 2),
                         'tiles_per_s': round(len(index) / build_s, 1),
                         'bytes_per_tile': round(_dir_bytes(tmp / 'index') / len(index)),
                         'crop_side_m': index.crop_side_m, 'stride_m': index.spec.stride_m},
               'drive': {'frames': len(frames), 'fps': FPS, 'gnss_sigma_m': round(sigma, 2)}}
        store = open_store(map_path)
        for kind in ('torch', 'onnxruntime'):
            backend = make_backend(kind, model_path=MODEL, export_dir=tmp / 'onnx')
            for top_k, cache_mb, name in ((default_k, 0.0, 'cache_off'),
                                          (default_k, 64.0, 'cache_on'),
                                          (3, 64.0, 'top3_cache_on')):
                loc = Localizer(model=backend, index=index, store=store,
                                config=LocalizerConfig(top_k=top_k, cache_mb=cache_mb))
                out[f'{kind}_{name}'] = _run(loc, world, frames, xy, gnss_xy, sigma)
            off, on = out[f'{kind}_cache_off'], out[f'{kind}_cache_on']
            out[f'{kind}_cache_speedup'] = round(off['total_ms_median'] / on['total_ms_median'],
                                                 2)
        best = min(('torch', 'onnxruntime'),
                   key=lambda k: out[f'{k}_cache_on']['total_ms_median'])
        out['target_total_ms'] = TARGET_MS
        out['fastest_backend'] = best
        out['meets_target'] = out[f'{best}_cache_on']['total_ms_median'] <= TARGET_MS
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
