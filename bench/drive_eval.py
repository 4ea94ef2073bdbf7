"""Tracking over held-out city drives, per GNSS profile, against the GNSS + odometry EKF.

    python bench/drive_eval.py --root runs/drives --seeds 0 1 2 --profiles urban outages \
        --duration-s 120 --out docs/results/drive_eval.json

Cities, tile indexes and drive bags are made under ``--root`` when missing (reused when
there). Heavy (minutes per drive on a CPU): not part of ``make bench``. The experiment is
ciper_ros/experiments/drive_eval.py; the numbers are in docs/tracking.md.
"""

import argparse
import json
from pathlib import Path
import sys


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ciper_ros.experiments.drive_eval import drive_eval, table
    from ciper_ros.model.build import default_model_path
    from ciper_ros.synth.gnss import GNSS_PROFILES
    from ciper_ros.util.atomic import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default='runs/drives', help='cities, indexes and bags')
    p.add_argument('--model', help='checkpoint (default: the shipped model)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                   help="held-out city seeds (the shipped model's test cities)")
    p.add_argument('--profiles', nargs='+', default=['urban'], choices=list(GNSS_PROFILES))
    p.add_argument('--duration-s', type=float, default=120.0)
    p.add_argument('--camera-hz', type=float, default=5.0)
    p.add_argument('--kidnapped', action='store_true',
                   help="also each city's first-profile drive without its first 30 s of GNSS")
    p.add_argument('--out', default='bench/results/drive_eval.json')
    args = p.parse_args()
    model = Path(args.model) if args.model else default_model_path()
    result = drive_eval(root=Path(args.root), model=model, seeds=args.seeds,
                        profiles=args.profiles, duration_s=args.duration_s,
                        camera_hz=args.camera_hz, kidnapped=args.kidnapped)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1, default=float) + '\n')
    print(table(result))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
