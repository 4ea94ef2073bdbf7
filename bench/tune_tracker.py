"""Tune the drive tracker on a validation drive (never a test city): settings, then covariance.

One drive of the validation city (seed 500) under a GNSS profile (default urban) is run
through the node's pipeline with the tracker for each candidate setting and camera; the
setting with the lowest mean of (median, p95 / 4) position error over both cameras wins,
and the output covariance scales are then fitted on its records so that the 95 % ellipse
holds 95 % of the errors (position: the 95th percentile of NEES_xy / 5.991; heading: of
the squared normalised heading error / 3.841). Writes JSON with every candidate's numbers.

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
    'default': {},
    'floor1': {'frame_sigma_floor_m': 1.0},
    'gnss0.3': {'gnss_power': 0.3},
    'floor1_gnss0.3': {'frame_sigma_floor_m': 1.0, 'gnss_power': 0.3},
    'floor1_gnss0.3_frames0.1': {'frame_sigma_floor_m': 1.0, 'gnss_power': 0.3,
                                 'frame_power': 0.1},
}


def main() -> int:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from ciper_ros.bag.drive import write_drive_bag
    from ciper_ros.bag.reader import BagTopics
    from ciper_ros.experiments.city_eval import ensure_city, index_folder
    from ciper_ros.experiments.drive_eval import CAMERAS, series_summary
    from ciper_ros.experiments.localization_eval import open_city_localizer
    from ciper_ros.experiments.recipe import ModelRecipe, VAL_SEED
    from ciper_ros.experiments.tracking_eval import tracked_records
    from ciper_ros.runtime.tracker import TrackerConfig
    from ciper_ros.synth.gnss import gnss_profile
    from ciper_ros.synth.recording import DriveConfig

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default='runs/abl', help='cities/, drives/ and indexes here')
    p.add_argument('--model', default=str(REPO / 'models' / 'ciper_t_synthetic.pt'))
    p.add_argument('--profile', default='urban')
    p.add_argument('--duration-s', type=float, default=60.0)
    p.add_argument('--candidates', nargs='+', choices=list(CANDIDATES),
                   default=list(CANDIDATES))
    p.add_argument('--out', default='runs/tune_tracker.json')
    args = p.parse_args()
    root = Path(args.root)
    city = ensure_city(ModelRecipe(work_dir=str(root)), root / 'cities' / str(VAL_SEED),
                       seed=VAL_SEED)
    loc, world = open_city_localizer(model=args.model, city=city,
                                     index_dir=index_folder(root, str(VAL_SEED), args.model))
    bag = root / 'drives' / f'{VAL_SEED}_{args.profile}_val_{args.duration_s:g}s'
    if not (bag / 'metadata.yaml').exists():
        write_drive_bag(world, bag, DriveConfig(duration_s=args.duration_s, seed=VAL_SEED,
                                                camera_hz=5.0, panorama=True,
                                                gnss=gnss_profile(args.profile)),
                        overwrite=True)
    result = {'bag': str(bag), 'candidates': {}}
    kept = {}
    for name in args.candidates:
        cfg = TrackerConfig(**CANDIDATES[name])
        result['candidates'][name] = {'config': CANDIDATES[name]}
        for cam, image in CAMERAS.items():
            topics = BagTopics(image=image,
                               camera_info='/camera/camera_info' if cam == 'forward' else '')
            recs, info = tracked_records(loc, bag, topics=topics, tracker_config=cfg)
            s = series_summary(recs)
            result['candidates'][name][cam] = {
                k: s.get(k) for k in ('position_error_m_median', 'position_error_m_p95',
                                      'lateral_error_m_median', 'heading_error_deg_median',
                                      'coverage_95', 'nees_xy_mean')} | {
                'reinits': info.get('reinits')}
            kept[name, cam] = recs
            print(name, cam, result['candidates'][name][cam], flush=True)

    def score(name):
        c = result['candidates'][name]
        return float(np.mean([c[cam]['position_error_m_median']
                              + c[cam]['position_error_m_p95'] / 4 for cam in CAMERAS]))

    best = min(args.candidates, key=score)
    result['best'] = best
    recs = [r for cam in CAMERAS for r in kept[best, cam]
            if r.ok and r.has_truth and math.isfinite(r.x_m)]
    nees = np.array([r.nees_xy for r in recs])
    nees = nees[np.isfinite(nees)]
    z2 = np.array([math.radians(r.heading_error_deg) ** 2 / max(r.covariance[2, 2], 1e-12)
                   for r in recs])
    result['output_cov_scale'] = round(float(np.percentile(nees, 95) / 5.991), 3)
    result['output_yaw_cov_scale'] = round(float(np.percentile(z2, 95) / 3.841), 3)
    Path(args.out).write_text(json.dumps(result, indent=1) + '\n')
    print(json.dumps({k: result[k] for k in ('best', 'output_cov_scale',
                                             'output_yaw_cov_scale')}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
