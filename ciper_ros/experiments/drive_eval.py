"""Tracking over simulated drives of held-out cities, against the GNSS + odometry filter.

For each held-out city (the shipped model's test seeds) and GNSS profile, one drive is
recorded as a rosbag2 (forward camera and panorama, GNSS, wheel odometry, truth) and run
three ways on the same streams: every frame on its own (GNSS prior), CIPER tracked (the
node's pipeline with its drive tracker) and the baseline users already run (GNSS + wheel
odometry EKF, robot_localization-style, its noise tuned on the same drive's truth: the
baseline's best case). Per camera and series: the one metrics module's summary, plus the
lateral error (across the true heading), and the 30 s windows in which the tracker's mean
error exceeds the baseline's. ``bench/drive_eval.py`` is the command; docs/tracking.md
holds the numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ciper_ros.metrics.frames import FrameRecord, summarize

CAMERAS = {'forward': '/camera/image_raw', 'panorama': '/camera_pano/image_raw/compressed'}
WINDOW_S = 30.0
KIDNAPPED_S = 30.0          # a kidnapped start: no GNSS and no initial pose this long
HOLD_S = 5.0                # "below 2 m" once it stays there this long
OUTAGE_MIN_S = 30.0         # a GNSS gap this long is an outage (the outages profile's)
# every drive of these profiles has this outage (start s, length s) besides its random
# dropouts: the target is "through a 60 s GNSS outage", and a 90 s drive's random
# ones (1 / 150 Hz) mostly miss it
SCHEDULED_OUTAGES_S = {'outages': ((20.0, 60.0),)}


def camera_topics(cam: str):
    """Give the bag topics of a drive camera (``CAMERAS``; the forward one has CameraInfo)."""
    from ciper_ros.bag.reader import BagTopics

    return BagTopics(image=CAMERAS[cam],
                     camera_info='/camera/camera_info' if cam == 'forward' else '')


def lateral_errors_m(records: list[FrameRecord]) -> np.ndarray:
    """|error| across the true heading (m) of each localized frame with truth."""
    out = []
    for r in records:
        if r.ok and math.isfinite(r.x_m) and r.has_truth and math.isfinite(r.truth_yaw_rad):
            n = np.array([-math.sin(r.truth_yaw_rad), math.cos(r.truth_yaw_rad)])
            out.append(abs(float(n @ (r.xy_m - np.array([r.truth_x_m, r.truth_y_m])))))
    return np.asarray(out)


def worse_windows(ours: list[FrameRecord], theirs: list[FrameRecord], *,
                  window_s: float = WINDOW_S) -> dict:
    """Sliding 30 s windows (1 s steps) where our mean error exceeds the baseline's.

    Frames are matched by stamp; a frame either side did not localize is left out of that
    window for both. Also the worst window's two means.
    """
    b = {r.stamp_ns: r for r in theirs}
    pairs = [(r.stamp_ns * 1e-9, r.position_error_m, b[r.stamp_ns].position_error_m)
             for r in ours if r.stamp_ns in b and r.ok and b[r.stamp_ns].ok and r.has_truth
             and math.isfinite(r.x_m) and math.isfinite(b[r.stamp_ns].x_m)]
    if not pairs:
        return {'windows': 0, 'worse': 0}
    t, e_ours, e_base = (np.array(v) for v in zip(*pairs, strict=True))
    worse, n, worst = 0, 0, (-math.inf, math.nan, math.nan)
    for start in np.arange(t[0], max(t[-1] - window_s, t[0]) + 1e-9, 1.0):
        inside = (t >= start) & (t < start + window_s)
        if inside.sum() < 5:
            continue
        n += 1
        a, c = float(e_ours[inside].mean()), float(e_base[inside].mean())
        worse += int(a > c)
        if a - c > worst[0]:
            worst = (a - c, a, c)
    return {'windows': n, 'worse': worse, 'worst_ours_m': worst[1], 'worst_baseline_m': worst[2]}


def kidnapped_summary(records: list[FrameRecord], *, free_s: float = KIDNAPPED_S,
                      below_m: float = 2.0, hold_s: float = HOLD_S) -> dict:
    """How a start without GNSS or initial pose went: when the track got below 2 m and held.

    ``time_to_2m_s``: from the first image to the first frame after which every tracked
    frame for ``hold_s`` is localized within ``below_m`` (NaN if never within the drive);
    ``error_at_10s_m`` / ``error_at_30s_m``: the median error over the next two seconds;
    ``below_2m_fraction_10_to_30s``: of the frames between 10 s and ``free_s``.
    """
    rows = [(r.stamp_ns, r.position_error_m if r.ok and r.has_truth and math.isfinite(r.x_m)
             else math.inf) for r in records]
    if not rows:
        return {'time_to_2m_s': math.nan}
    t0 = rows[0][0]
    t = np.array([(s - t0) * 1e-9 for s, _ in rows])
    e = np.array([v for _, v in rows])
    ttb = math.nan
    for i in range(len(t)):
        window = (t >= t[i]) & (t <= t[i] + hold_s)
        if t[i] + hold_s <= t[-1] and np.all(e[window] < below_m):
            ttb = float(t[i])
            break

    def at(s):
        inside = (t >= s) & (t < s + 2.0)
        return float(np.median(e[inside])) if inside.any() else math.nan
    mid = (t >= 10.0) & (t <= free_s)
    return {'time_to_2m_s': ttb, 'error_at_10s_m': at(10.0), 'error_at_30s_m': at(free_s),
            'below_2m_fraction_10_to_30s': float(np.mean(e[mid] < below_m)) if mid.any()
            else math.nan}


def evaluate_kidnapped(loc, bag: Path, *, cameras=tuple(CAMERAS), free_s: float = KIDNAPPED_S,
                       progress: bool = True) -> dict:
    """Tracked from a kidnapped start (no fix for ``free_s``, no initial pose), per camera."""
    from ciper_ros.experiments.tracking_eval import tracked_records

    out: dict = {}
    for cam in cameras:
        topics = camera_topics(cam)
        tracked, info = tracked_records(loc, bag, topics=topics, withhold_gnss_s=free_s,
                                        progress=progress)
        out[cam] = {'tracked': series_summary(tracked), 'tracker': info,
                    'kidnapped': kidnapped_summary(tracked, free_s=free_s)}
    return out


def series_summary(records: list[FrameRecord]) -> dict:
    """Summarize like the metrics module, plus the lateral error's median and p95."""
    out = summarize(records)
    lat = lateral_errors_m(records)
    if len(lat):
        out['lateral_error_m_median'] = float(np.median(lat))
        out['lateral_error_m_p95'] = float(np.percentile(lat, 95))
    out.pop('not_localized_reasons', None)
    return out


def outage_errors(records: list[FrameRecord], fix_stamps_ns, *,
                  min_gap_s: float = OUTAGE_MIN_S) -> dict:
    """Give the worst error inside each GNSS outage (fixes at least ``min_gap_s`` apart).

    ``outages``: (start s, length s) after the first fix; ``max_error_m``: per outage, the
    largest error of a frame stamped inside it (inf for a frame not localized there).
    """
    t = np.sort(np.asarray(fix_stamps_ns, np.int64))
    gaps = [(int(a), int(b)) for a, b in zip(t[:-1], t[1:], strict=True)
            if (b - a) * 1e-9 >= min_gap_s]
    out = {'outages': [], 'max_error_m': []}
    for a, b in gaps:
        inside = [r for r in records if a < r.stamp_ns < b and r.has_truth]
        if not inside:
            continue
        errs = [r.position_error_m if r.ok and math.isfinite(r.x_m) else math.inf
                for r in inside]
        out['outages'].append((round((a - t[0]) * 1e-9, 1), round((b - a) * 1e-9, 1)))
        out['max_error_m'].append(float(max(errs)))
    return out


def evaluate_drive(loc, bag: Path, *, cameras=tuple(CAMERAS), progress: bool = True) -> dict:
    """Per-frame, tracked and baseline summaries of one drive, per camera."""
    from ciper_ros.bag.offline import offline_records
    from ciper_ros.bag.reader import read_recording
    from ciper_ros.experiments.baseline_eval import baseline_records
    from ciper_ros.experiments.tracking_eval import tracked_records
    from ciper_ros.runtime.gnss import navsatfix_to_prior

    out: dict = {}
    for cam in cameras:
        topics = camera_topics(cam)
        frames = offline_records(loc, bag, topics=topics, progress=progress)
        tracked, info = tracked_records(loc, bag, topics=topics, progress=progress)
        rec = read_recording(bag, topics)
        try:
            base, base_info = baseline_records(rec, plane=loc.index.plane, tune=True)
        finally:
            rec.bag.close()
        fixes = [t for t, m in rec.fixes if navsatfix_to_prior(m)[0] is not None]
        out[cam] = {'per_frame': series_summary(frames), 'tracked': series_summary(tracked),
                    'baseline': series_summary(base), 'tracker': info,
                    'baseline_filter': {k: v for k, v in base_info.items()
                                        if k in ('config', 'grid_points', 'gnss_used')},
                    'windows_worse_than_baseline': worse_windows(tracked, base),
                    'outages': {name: outage_errors(series, fixes) for name, series in
                                (('tracked', tracked), ('baseline', base))}}
    return out


def drive_eval(*, root: Path, model: Path, seeds: list[int], profiles: list[str],
               duration_s: float, camera_hz: float = 5.0, drive_seed: int = 100,
               city_size_m: float | None = None, kidnapped: bool = False,
               progress: bool = True) -> dict:
    """Record and evaluate one drive per (held-out city, GNSS profile); JSON-ready result.

    ``kidnapped``: each city's drive of the first profile is run again without its first
    30 s of GNSS (:func:`evaluate_kidnapped`), under ``'<seed>/kidnapped'``.
    """
    from ciper_ros.bag.drive import write_drive_bag
    from ciper_ros.experiments.city_eval import ensure_city, index_folder
    from ciper_ros.experiments.localization_eval import open_city_localizer
    from ciper_ros.experiments.recipe import ModelRecipe
    from ciper_ros.synth.gnss import gnss_profile
    from ciper_ros.synth.recording import DriveConfig

    recipe = ModelRecipe(work_dir=str(root))
    if city_size_m:
        recipe = ModelRecipe(work_dir=str(root), city_size_m=city_size_m)
    result: dict = {'model': str(model), 'seeds': seeds, 'profiles': profiles,
                    'duration_s': duration_s, 'camera_hz': camera_hz, 'drives': {}}
    for seed in seeds:
        city = ensure_city(recipe, root / 'cities' / str(seed), seed=seed, progress=progress)
        loc, world = open_city_localizer(model=model, city=city,
                                         index_dir=index_folder(root, str(seed), model),
                                         progress=progress)
        for profile in profiles:
            scheduled = SCHEDULED_OUTAGES_S.get(profile)
            tag = ''.join(f'_out{a:g}+{b:g}' for a, b in scheduled or ())
            bag = root / 'drives' / f'{seed}_{profile}_{drive_seed}_{duration_s:g}s{tag}'
            if not (bag / 'metadata.yaml').exists():
                write_drive_bag(world, bag, DriveConfig(
                    duration_s=duration_s, seed=drive_seed + seed, camera_hz=camera_hz,
                    panorama=True, raw_images=True,
                    gnss=gnss_profile(profile, scheduled_outages_s=scheduled)),
                    overwrite=True, progress=progress)
            result['drives'][f'{seed}/{profile}'] = evaluate_drive(loc, bag, progress=progress)
            if kidnapped and profile == profiles[0]:
                result.setdefault('kidnapped', {})[str(seed)] = evaluate_kidnapped(
                    loc, bag, progress=progress)
    return result


HEADLINE = (('per_frame', 'position_error_m_median'), ('tracked', 'position_error_m_median'),
            ('baseline', 'position_error_m_median'), ('tracked', 'position_error_m_p95'),
            ('baseline', 'position_error_m_p95'), ('tracked', 'lateral_error_m_median'),
            ('tracked', 'heading_error_deg_median'), ('tracked', 'coverage_95'))


def table(result: dict) -> str:
    """Markdown: one row per drive and camera, the headline numbers."""
    cols = ['drive', 'camera', 'frames m', 'tracked m', 'baseline m', 'tracked p95',
            'baseline p95', 'tracked lateral m', 'tracked heading deg', 'tracked cov95',
            'worse 30 s windows']
    rows = ['| ' + ' | '.join(cols) + ' |', '|' + ' --- |' * len(cols)]
    for name, cams in result['drives'].items():
        for cam, d in cams.items():
            vals = [f'{d[s].get(k, math.nan):.2f}' for s, k in HEADLINE]
            w = d['windows_worse_than_baseline']
            rows.append(f'| {name} | {cam} | ' + ' | '.join(vals)
                        + f" | {w['worse']}/{w['windows']} |")
    outs = [(name, cam, d['outages']) for name, cams in result['drives'].items()
            for cam, d in cams.items() if d.get('outages', {}).get('tracked', {}).get('outages')]
    if outs:
        rows += ['', '| drive | camera | GNSS outages (start s, length s) | tracked max m | '
                 'baseline max m |', '|' + ' --- |' * 5]
        for name, cam, o in outs:
            spans = ', '.join(f'{a:g} s +{b:g} s' for a, b in o['tracked']['outages'])
            mx = ', '.join(f'{v:.2f}' for v in o['tracked']['max_error_m'])
            mb = ', '.join(f'{v:.2f}' for v in o['baseline']['max_error_m'])
            rows.append(f'| {name} | {cam} | {spans} | {mx} | {mb} |')
    if result.get('kidnapped'):
        rows += ['', '| kidnapped start | camera | to 2 m s | at 10 s m | at 30 s m | '
                 'below 2 m, 10-30 s | reinits |', '|' + ' --- |' * 7]
        for seed, cams in result['kidnapped'].items():
            for cam, d in cams.items():
                k = d['kidnapped']
                rows.append(f"| {seed} | {cam} | {k['time_to_2m_s']:.1f} | "
                            f"{k['error_at_10s_m']:.2f} | {k['error_at_30s_m']:.2f} | "
                            f"{k['below_2m_fraction_10_to_30s']:.2f} | "
                            f"{d['tracker']['reinits']} |")
    return '\n'.join(rows)
