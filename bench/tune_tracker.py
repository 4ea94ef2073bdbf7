"""Tune the drive tracker on a validation drive (never a test city): settings, then covariance.

Drives of the validation city (seed 500; three routes by default) under a GNSS profile
(default urban), and the first again as a kidnapped start (no GNSS for its first 30 s), are
run through the node's pipeline with the tracker for each candidate setting and camera;
the setting with the lowest mean of (median + p95 / 4) position error over the GNSS drives
wins (the kidnapped run is reported beside them), and the output covariance scales are then
fitted on its GNSS drives so that the 95 % ellipse holds 95 % of the errors (position: the
95th percentile of NEES_xy / 5.991; heading: of the squared normalised heading error /
3.841). The divergence gates use the published covariance, so the fit is a fixed point:
the scales found multiply the ones run with, and the winner is run again with them
(``--refits`` times). Writes JSON with every candidate's numbers.

    python bench/tune_tracker.py --root runs/abl --out runs/tune_tracker.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys

REPO = Path(__file__).resolve().parents[1]

CANDIDATES = {
    'floor0.3_gnss1': {'frame_sigma_floor_m': 0.3, 'gnss_power': 1.0},
    'floor1_gnss1': {'frame_sigma_floor_m': 1.0, 'gnss_power': 1.0},
    'floor0.3_gnss0.3': {'frame_sigma_floor_m': 0.3, 'gnss_power': 0.3},
    'floor0.5_gnss0.3': {'frame_sigma_floor_m': 0.5, 'gnss_power': 0.3},
    'floor1_gnss0.3': {'frame_sigma_floor_m': 1.0, 'gnss_power': 0.3},
    'floor2_gnss0.3': {'frame_sigma_floor_m': 2.0, 'gnss_power': 0.3},
    'floor1_gnss0.3_frames0.3': {'frame_sigma_floor_m': 1.0, 'gnss_power': 0.3,
                                 'frame_power': 0.3},
}


def main() -> int:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from ciper_ros.bag.drive import write_drive_bag
    from ciper_ros.experiments.city_eval import ensure_city, index_folder
    from ciper_ros.experiments.drive_eval import camera_topics, CAMERAS, series_summary
    from ciper_ros.experiments.localization_eval import open_city_localizer
    from ciper_ros.experiments.recipe import ModelRecipe, VAL_SEED
    from ciper_ros.experiments.tracking_eval import tracked_records
    from ciper_ros.runtime.tracker import DriveTrackerConfig, TrackerConfig
    from ciper_ros.synth.gnss import gnss_profile
    from ciper_ros.synth.recording import DriveConfig

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default='runs/abl', help='cities/, drives/ and indexes here')
    p.add_argument('--model', default=str(REPO / 'models' / 'ciper_t_synthetic.pt'))
    p.add_argument('--profile', default='urban')
    p.add_argument('--duration-s', type=float, default=60.0)
    p.add_argument('--candidates', nargs='+', choices=list(CANDIDATES),
                   default=list(CANDIDATES))
    p.add_argument('--drive-seeds', type=int, nargs='+', default=[VAL_SEED, 501, 502],
                   help='one validation drive per seed (different routes, same city)')
    p.add_argument('--kidnapped-s', type=float, default=30.0,
                   help='the first drive again without this long of GNSS (0: not run)')
    p.add_argument('--refits', type=int, default=2)
    p.add_argument('--out', default='runs/tune_tracker.json')
    args = p.parse_args()
    root = Path(args.root)
    city = ensure_city(ModelRecipe(work_dir=str(root)), root / 'cities' / str(VAL_SEED),
                       seed=VAL_SEED)
    loc, world = open_city_localizer(model=args.model, city=city,
                                     index_dir=index_folder(root, str(VAL_SEED), args.model))
    runs = []                                       # (label, bag, GNSS withheld s)
    for ds in args.drive_seeds:
        tag = 'val' if ds == VAL_SEED else f'val{ds}'
        bag = root / 'drives' / f'{VAL_SEED}_{args.profile}_{tag}_{args.duration_s:g}s'
        if not (bag / 'metadata.yaml').exists():
            write_drive_bag(world, bag, DriveConfig(duration_s=args.duration_s, seed=ds,
                                                    camera_hz=5.0, panorama=True,
                                                    gnss=gnss_profile(args.profile)),
                            overwrite=True)
        runs.append((f'drive{ds}', bag, 0.0))
    if args.kidnapped_s > 0:
        runs.append(('kidnapped', runs[0][1], args.kidnapped_s))
    result = {'bags': {label: str(bag) for label, bag, _ in runs}, 'candidates': {}}

    def run(cfg, drive):
        out, recs = {}, {}
        for label, bag, withhold in runs:
            for cam in CAMERAS:
                recs[label, cam], info = tracked_records(
                    loc, bag, topics=camera_topics(cam), tracker_config=cfg, drive_config=drive,
                    withhold_gnss_s=withhold, progress=False)
                s = series_summary(recs[label, cam])
                out[f'{label}/{cam}'] = {k: s.get(k) for k in (
                    'position_error_m_median', 'position_error_m_p95',
                    'lateral_error_m_median', 'heading_error_deg_median', 'coverage_95',
                    'nees_xy_mean')} | {'reinits': info.get('reinits')}
        return out, recs

    kept = {}
    drive = DriveTrackerConfig()
    for name in args.candidates:
        got, kept[name] = run(TrackerConfig(**CANDIDATES[name]), drive)
        result['candidates'][name] = {'config': CANDIDATES[name]} | got
        print(name, json.dumps(got), flush=True)

    def score(name):          # the GNSS drives; a kidnapped start is reported, not scored:
        c = result['candidates'][name]   # it fails alike under every setting (160-260 m)
        return float(np.mean([v['position_error_m_median'] + v['position_error_m_p95'] / 4
                              for k, v in c.items()
                              if k != 'config' and not k.startswith('kidnapped')]))

    result['scores'] = {name: round(score(name), 3) for name in args.candidates}
    best = min(args.candidates, key=score)
    result['best'] = best
    recs_by_cam = kept[best]
    result['refits'] = []
    for _ in range(max(1, args.refits)):
        # on the GNSS drives: a lost kidnapped start (hundreds of metres off a tight cloud)
        # would inflate the scale 100-fold for every converged filter
        recs = [r for (label, _), rs in recs_by_cam.items() if label != 'kidnapped'
                for r in rs if r.ok and r.has_truth and math.isfinite(r.x_m)]
        nees = np.array([r.nees_xy for r in recs])
        nees = nees[np.isfinite(nees)]
        z2 = np.array([math.radians(r.heading_error_deg) ** 2 / max(r.covariance[2, 2], 1e-12)
                       for r in recs])
        drive = DriveTrackerConfig(
            output_cov_scale=round(drive.output_cov_scale
                                   * float(np.percentile(nees, 95) / 5.991), 3),
            output_yaw_cov_scale=round(drive.output_yaw_cov_scale
                                       * float(np.percentile(z2, 95) / 3.841), 3))
        got, recs_by_cam = run(TrackerConfig(**CANDIDATES[best]), drive)
        result['refits'].append({'output_cov_scale': drive.output_cov_scale,
                                 'output_yaw_cov_scale': drive.output_yaw_cov_scale} | got)
        print('refit', json.dumps(result['refits'][-1]), flush=True)
    result['output_cov_scale'] = drive.output_cov_scale
    result['output_yaw_cov_scale'] = drive.output_yaw_cov_scale
    Path(args.out).write_text(json.dumps(result, indent=1) + '\n')
    print(json.dumps({k: result[k] for k in ('best', 'output_cov_scale',
                                             'output_yaw_cov_scale')}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
