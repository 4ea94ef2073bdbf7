"""Split a model's chained errors by whether the chosen tile holds the camera.

What limits a trained model (docs/ablations.md, "What limits the shipped v2"): per camera,
with the calibrated match threshold and with every frame accepted, the share of frames on
the right tile, the errors on right and wrong tiles and the wrong tiles' share of the tail.

    python bench/diagnose_tiles.py --city runs/v2/cities/0 --index /tmp/idx0 \
        --out docs/results/diag_v2.json

Not part of `make bench` (minutes on this CPU; the index is built when missing).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys


def diagnose(records) -> dict:
    import numpy as np

    ok = [r for r in records if r.ok and math.isfinite(r.x_m)]
    e = np.array([r.position_error_m for r in ok])
    right = np.array([bool(r.extra['chosen_tile_correct']) for r in ok])
    h = np.array([r.heading_error_deg for r in ok])
    tail = e > np.percentile(e, 90)
    return {'accepted': len(ok) / len(records), 'median_m': float(np.median(e)),
            'p95_m': float(np.percentile(e, 95)), 'right_tile': float(right.mean()),
            'median_right_m': float(np.median(e[right])),
            'p95_right_m': float(np.percentile(e[right], 95)),
            'median_wrong_m': float(np.median(e[~right])) if (~right).any() else None,
            'wrong_share_of_worst_10pct': float((~right[tail]).mean()),
            'wrong_share_of_mean_error': float(e[~right].sum() / e.sum()),
            'heading_median_right_deg': float(np.median(h[right]))}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ciper_ros.experiments.integrity_eval import raw_match
    from ciper_ros.experiments.localization_eval import (
        chained_frames,
        chained_records,
        open_city_localizer,
    )

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='models/ciper_t_synthetic.pt')
    p.add_argument('--city', required=True)
    p.add_argument('--index', required=True, help='tile index folder (built when missing)')
    p.add_argument('--n', type=int, default=200)
    p.add_argument('--seed', type=int, default=12345)
    p.add_argument('--out', default='bench/results/diagnose_tiles.json')
    args = p.parse_args()
    loc, world = open_city_localizer(model=args.model, city=args.city, index_dir=args.index)
    out = {'model': args.model, 'city': args.city, 'n': args.n, 'seed': args.seed,
           'prior_sigma_m': 10.0}
    for cam, heading_prior_deg in (('panorama', None), ('forward', 10.0)):
        frames = list(chained_frames(
            world=world, plane=loc.index.plane, crop_side_m=loc.index.crop_side_m,
            model_config=loc.model.config, n=args.n, prior_sigma_m=10.0,
            heading_prior_deg=heading_prior_deg, seed=args.seed,
            camera='native' if cam == 'panorama' else 'forward'))
        for gate, lz in (('calibrated', loc), ('accept_all', raw_match(loc))):
            recs = chained_records(lz, frames, total=args.n, desc=f'{cam} ({gate})')
            out[f'{cam}_{gate}'] = diagnose(recs)
            print(cam, gate, json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                         for k, v in out[f'{cam}_{gate}'].items()}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + '\n')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
