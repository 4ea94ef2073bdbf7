"""Ablations of the default model in one harness, under one CPU budget per variant.

Joint vs cascade, query modes, shared encoders and a geometric baseline.

    python bench/ablation.py --budget-minutes 30 --train-cities runs/default_model/cities/1000 \
        ... --test-city runs/default_model/cities/0 --out bench/results/ablation

Writes ablations.json and ablations.md (the table for docs/) into --out. Variants: see
ciper_ros/train/ablations.py. Not part of `make bench` (it trains; hours at full budget).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ciper_ros.experiments.ablations import run_suite, SUITES

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default='config/train/default_model.yaml')
    p.add_argument('--train-cities', nargs='+', required=True, help='city folders')
    p.add_argument('--val-city', help='validation city folder (curves)')
    p.add_argument('--test-city', nargs='+', required=True, help='held-out city folders')
    p.add_argument('--budget-minutes', type=float, required=True,
                   help='training wall-clock per variant (the cascade splits it in two)')
    p.add_argument('--n', type=int, default=150, help='evaluation pairs')
    p.add_argument('--suite', choices=list(SUITES), default='v1',
                   help="v1: the first model's ablations; v2: issue 14's changes (use "
                        '--config config/train/default_model_v2.yaml)')
    names = sorted({n for t, e in SUITES.values() for n in (*t, *e)})
    p.add_argument('--variants', nargs='+', metavar='NAME',
                   help='train and score only these (default: the whole suite): '
                        + ', '.join(names))
    p.add_argument('--no-geometric', action='store_true')
    p.add_argument('--out', default='bench/results/ablation')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE')
    args = p.parse_args()
    # --variants is greedy: KEY=VALUE overrides written after it belong to the overrides
    if args.variants:
        args.overrides += [v for v in args.variants if '=' in v]
        args.variants = [v for v in args.variants if '=' not in v]
        unknown = sorted(set(args.variants) - set(names))
        if unknown:
            p.error(f'unknown variant(s) {unknown}; choose from {names}')
    overrides = ['cities=[' + ','.join(args.train_cities) + ']', *args.overrides]
    if args.val_city:
        overrides.append(f'val_cities=[{args.val_city}]')
    result = run_suite(args.config, overrides, args.out, budget_minutes=args.budget_minutes,
                       test_cities=args.test_city, n=args.n, variants=args.variants,
                       geometric=not args.no_geometric, suite=args.suite)
    print((Path(args.out) / 'ablations.md').read_text())
    print(f'wrote {args.out}/ablations.json ({len(result["variants"])} variants)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
