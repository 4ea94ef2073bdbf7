"""The evaluation report of ``ciper bag eval``: metrics JSON, frame CSV, PNG plots, Markdown.

Plots: the trajectory over the aerial map (truth, GNSS prior, estimate), position error
over time against the GNSS prior's, the error CDF of both, and the latency histogram; with
``baseline`` records (the GNSS + odometry filter on the same drive,
:mod:`ciper_ros.experiments.baseline_eval`) each plot and the table show it too.
Every file is written atomically; the Markdown page links the plots.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ciper_ros.metrics.frames import FrameRecord, summarize
from ciper_ros.runtime.frames import write_records
from ciper_ros.util.atomic import atomic_path, atomic_write_text


def metrics(records: list[FrameRecord]) -> dict:
    """Headline numbers of a drive (:func:`ciper_ros.metrics.frames.summarize`)."""
    return summarize(records)


def _col(records: list[FrameRecord], fn, only_ok: bool = False) -> np.ndarray:
    return np.array([fn(r) for r in records if r.ok or not only_ok], np.float64)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches='tight', format='png')
    plt.close(fig)


# estimates shown beside CIPER's per-frame one: key -> (label, colour)
SERIES = {'tracked': ('CIPER tracked', 'limegreen'),
          'baseline': ('GNSS + odometry EKF', 'mediumorchid')}


def plot_trajectory(records: list[FrameRecord], path: Path, *, store=None, plane=None,
                    zoom: int | None = None, series: dict | None = None) -> None:
    """Truth, GNSS prior and estimate over the aerial map (ENU metres of the index)."""
    import matplotlib.pyplot as plt

    tx, ty = _col(records, lambda r: r.truth_x_m), _col(records, lambda r: r.truth_y_m)
    gx, gy = _col(records, lambda r: r.prior_x_m), _col(records, lambda r: r.prior_y_m)
    ex, ey = _col(records, lambda r: r.x_m, True), _col(records, lambda r: r.y_m, True)
    series = series or {}
    other = {k: (_col(v, lambda r: r.x_m, True), _col(v, lambda r: r.y_m, True))
             for k, v in series.items()}
    pts = np.concatenate([np.c_[tx, ty], np.c_[gx, gy], np.c_[ex, ey],
                          *(np.c_[x, y] for x, y in other.values())])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    fig, ax = plt.subplots(figsize=(8, 8))
    if len(pts):
        lo, hi = pts.min(0) - 15.0, pts.max(0) + 15.0
        c, side = (lo + hi) / 2, float(max(hi - lo))
        if store is not None and plane is not None:
            ll = plane.latlon_from_xy_m(c[None])[0]
            try:
                crop = store.crop((float(ll[0]), float(ll[1])), side, 1024, zoom=zoom,
                                  missing='fill', fill_rgb=(60, 60, 60))
                ax.imshow(crop.image_rgb, extent=(c[0] - side / 2, c[0] + side / 2,
                                                  c[1] - side / 2, c[1] + side / 2))
            except Exception as e:          # a map problem must not lose the report
                ax.set_title(f'(aerial map unavailable: {e})', fontsize=8)
        ax.set_xlim(c[0] - side / 2, c[0] + side / 2)
        ax.set_ylim(c[1] - side / 2, c[1] + side / 2)
    ax.plot(tx, ty, '-', color='white', lw=3, label='ground truth')
    ax.plot(tx, ty, '-', color='black', lw=1)
    ax.plot(gx, gy, '.', color='orange', ms=4, label='GNSS prior')
    ax.plot(ex, ey, '.', color='deepskyblue', ms=4, label='CIPER per frame')
    for k, (x, y) in other.items():
        ax.plot(x, y, '-', color=SERIES[k][1], lw=1.5, label=SERIES[k][0])
    ax.set_xlabel('east (m, index frame)')
    ax.set_ylabel('north (m)')
    ax.set_aspect('equal')
    ax.legend(loc='upper right')
    _save(fig, path)


def plot_error_time(records: list[FrameRecord], path: Path, *,
                    series: dict | None = None) -> None:
    import matplotlib.pyplot as plt

    t0 = records[0].stamp_ns if records else 0
    t = np.array([(r.stamp_ns - t0) * 1e-9 for r in records])
    ok = np.array([r.ok for r in records], bool)
    e = _col(records, lambda r: r.position_error_m)
    g = _col(records, lambda r: r.prior_error_m)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, g, '-', color='orange', lw=1, label='GNSS prior')
    ax.plot(t[ok], e[ok], '.', color='deepskyblue', ms=4, label='CIPER per frame')
    for k, recs in (series or {}).items():
        tb = np.array([(r.stamp_ns - t0) * 1e-9 for r in recs if r.ok])
        ax.plot(tb, _col(recs, lambda r: r.position_error_m, True), '-',
                color=SERIES[k][1], lw=1.5, label=SERIES[k][0])
    miss = t[~ok]
    if len(miss):
        ax.plot(miss, np.zeros(len(miss)), '|', color='red', ms=10, label='no pose')
    ax.set_xlabel('time (s)')
    ax.set_ylabel('position error (m)')
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_cdf(records: list[FrameRecord], path: Path, *,
             series: dict | None = None) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    curves = [(records, lambda r: r.position_error_m, 'CIPER per frame', 'deepskyblue'),
              (records, lambda r: r.prior_error_m, 'GNSS prior', 'orange')]
    curves += [(recs, lambda r: r.position_error_m, *SERIES[k])
               for k, recs in (series or {}).items()]
    for recs, fn, label, color in curves:
        v = _col(recs, fn, True)
        v = np.sort(v[np.isfinite(v)])
        if len(v):
            ax.plot(v, np.arange(1, len(v) + 1) / len(v), color=color, label=label)
    ax.set_xlabel('position error (m)')
    ax.set_ylabel('fraction of localized frames')
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_latency(records: list[FrameRecord], path: Path, *, label: str) -> None:
    import matplotlib.pyplot as plt

    v = [r.latency_ms for r in records if r.ok and math.isfinite(r.latency_ms)]
    fig, ax = plt.subplots(figsize=(6, 4))
    if v:
        ax.hist(v, bins=40, color='slategray')
        ax.axvline(float(np.median(v)), color='k', ls='--', label=f'median {np.median(v):.0f} ms')
        ax.legend()
    ax.set_xlabel(label)
    ax.set_ylabel('frames')
    _save(fig, path)


def write_report(out_dir: str | os.PathLike, records: list[FrameRecord], *, meta: dict,
                 store=None, plane=None, zoom: int | None = None,
                 series: dict | None = None, series_info: dict | None = None) -> dict:
    """Write every report file into ``out_dir``; return the metrics.

    ``series``: other estimates on the same frames, by :data:`SERIES` key (``tracked``:
    CIPER through the drive tracker; ``baseline``: the GNSS + odometry filter); the
    metrics then hold each one's summary under its key, ``series_info`` (how each was
    configured: the baseline's tuned parameters, the tracker's counts) goes in the meta.
    """
    import matplotlib

    matplotlib.use('Agg')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = metrics(records)
    series = {k: v for k, v in (series or {}).items() if v}
    bad = sorted(set(series) - set(SERIES))
    if bad:
        raise ValueError(f'unknown report series {bad}: {sorted(SERIES)}')
    for k, v in series.items():
        m[k] = metrics(v)
        meta = {**meta, k: (series_info or {}).get(k, {})}
    online = meta.get('mode') == 'online'
    lat_label = ('latency: image published -> pose received (ms, wall)' if online
                 else 'processing time per frame (ms)')
    write_records(records, out / 'frames.csv')
    plot_trajectory(records, out / 'trajectory.png', store=store, plane=plane, zoom=zoom,
                    series=series)
    plot_error_time(records, out / 'error_time.png', series=series)
    plot_cdf(records, out / 'error_cdf.png', series=series)
    plot_latency(records, out / 'latency.png', label=lat_label)
    atomic_write_text(out / 'metrics.json', json.dumps({'metrics': m, 'meta': meta},
                                                       indent=1, default=str) + '\n')
    atomic_write_text(out / 'report.md', _markdown(m, meta, lat_label))
    return m


def _markdown(m: dict, meta: dict, lat_label: str) -> str:
    keys = [k for k in SERIES if k in m]

    def f(key, unit='', scale=1.0, digits=2, src=None):
        v = (m if src is None else src).get(key)
        return '-' if v is None else f'{v * scale:.{digits}f}{unit}'

    def row(label, key, prior_key=None, unit='', scale=1.0, digits=2, two=None):
        def cell(src):
            if two is not None:
                return ' / '.join(f(k, unit, scale, digits, src) for k in two)
            return f(key, unit, scale, digits, src)
        cells = [cell(None), f(prior_key, unit, scale, digits) if prior_key else '-']
        cells += [cell(m[k]) for k in keys]
        return f'| {label} | ' + ' | '.join(cells) + ' |'

    head = '| metric | CIPER per frame | GNSS prior (same frames) |' + ''.join(
        f' {SERIES[k][0]} (same drive) |' for k in keys)
    lines = [f'# CIPER evaluation: {Path(str(meta.get("bag", "?"))).name} ({meta.get("mode")})',
             '',
             f'- bag: `{meta.get("bag")}`', f'- index: `{meta.get("index")}`',
             f'- model: `{meta.get("model")}`', f'- mode: {meta.get("mode")}'
             + (f' (real node over DDS, replay rate {meta.get("rate")})'
                if meta.get('mode') == 'online' else " (the node's pipeline in-process)"),
             f'- frames: {m["frames"]}, localized {m["localized"]} '
             f'({100 * m["localized_fraction"]:.0f} %)', '',
             head, '|---|---|---|' + '---|' * len(keys),
             row('median position error', 'position_error_m_median',
                 'prior_error_m_localized_median', ' m'),
             row('p95 position error', 'position_error_m_p95', 'prior_error_m_localized_p95',
                 ' m'),
             row('mean position error', 'position_error_m_mean', 'prior_error_m_localized_mean',
                 ' m'),
             row('median heading error', 'heading_error_deg_median', unit=' deg'),
             row('within 1 / 2 / 5 m', None, unit=' %', scale=100, digits=0,
                 two=('position_within_1m', 'position_within_2m', 'position_within_5m')),
             row('covariance: mean NEES (ideal 2), 95 % ellipse coverage', None,
                 two=('nees_xy_mean', 'coverage_95')),
             f'| {lat_label.split(":")[0]}: median / p95 | {f("latency_ms_median", " ms", 1, 0)}'
             f' / {f("latency_ms_p95", " ms", 1, 0)} | - |' + ' - |' * len(keys), '']
    if 'tracked' in keys:
        info = meta.get('tracked') or {}
        lines += [f"{SERIES['tracked'][0]}: the drive tracker (a particle filter, "
                  f"{info.get('particles', '?')} particles) fed the bag's odometry, "
                  f"{'its GNSS fixes (robust, heavy-tailed) ' if info.get('gnss') else ''}"
                  f"and these per-frame results weighted by their match probability "
                  f"({info.get('frames_used', '?')} frames used, "
                  f"{info.get('reinits', '?')} re-initialisations).", '']
    if 'baseline' in keys:
        info = meta.get('baseline') or {}
        cfg = info.get('config') or {}
        tuned = ', '.join(f'{k} {cfg[k]:g}' for k in ('process_noise_scale', 'gnss_sigma_scale',
                                                    'gnss_rejection_mahalanobis') if k in cfg)
        lines += [f"{SERIES['baseline'][0]}: robot_localization's 2-D EKF with navsat_transform "
                  "(filterpy), fed this bag's wheel odometry and GNSS fixes "
                  f'({info.get("gnss_used", "?")} fixes used, {info.get("gnss_rejected", "?")}'
                  ' rejected by its gate); '
                  + (f'noise parameters tuned on {info["tuned_on"]} over '
                     f'{info["grid_points"]} grid points: {tuned}.' if info.get('tuned_on')
                     else f'untuned parameters: {tuned}.'), '']
    if m['not_localized_reasons']:
        lines += ['Frames without a pose, by reason:', '']
        lines += [f'- {k}: {v}' for k, v in sorted(m['not_localized_reasons'].items(),
                                                  key=lambda kv: -kv[1])]
        lines.append('')
    lines += ['![trajectory](trajectory.png)', '', '![error over time](error_time.png)', '',
              '![error CDF](error_cdf.png) ![latency](latency.png)', '',
              'Per-frame values: `frames.csv`; all numbers: `metrics.json`.', '']
    return '\n'.join(lines)
