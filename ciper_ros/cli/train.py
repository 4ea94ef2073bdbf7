"""``ciper train``, ``ciper eval`` and ``ciper ablate``: training and evaluating models."""

from __future__ import annotations

import argparse

from ciper_ros.cli.common import (
    check_in_file,
    check_kv,
    check_out_dir,
    check_out_file,
    RIG_PRESETS,
    subcommands,
)
from ciper_ros.util.errors import UserError

RIG_CHOICES = tuple(f'rig:{r}' for r in RIG_PRESETS)
OVERRIDES_HELP = 'override config values, e.g. lr=3.0e-4 model_overrides.depth=6'


def add_parser(subparsers) -> None:
    p = subparsers.add_parser('train', help='train a CIPER model (resumes from out_dir/last.pt)')
    p.add_argument('--config', help='training YAML (e.g. config/train/synthetic_ciper_t.yaml)')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE', help=OVERRIDES_HELP)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser('eval', help='evaluate a checkpoint (GT tile and chained '
                              'retrieval + pose) on synthetic cities or a VIGOR / KITTI / '
                              'Ford tree')
    p.add_argument('--model', help='checkpoint (.pt)')
    p.add_argument('--baseline', choices=['geometric'],
                   help='evaluate the non-learned flat-ground BEV + NCC baseline instead '
                        '(on the pairs the model gets)')
    p.add_argument('--city', action='append', default=[],
                   help='synthetic city folder (repeatable)')
    p.add_argument('--dataset', choices=['vigor', 'kitti', 'ford'],
                   help='evaluate on a real dataset tree instead of synthetic cities')
    p.add_argument('--root', help='dataset root folder (with --dataset)')
    p.add_argument('--set', dest='options', action='append', default=[], metavar='KEY=VALUE',
                   help='dataset option, e.g. split=test1, area=cross, rotation_range_deg=180 '
                        '(repeatable)')
    p.add_argument('--n', type=int, default=200,
                   help='number of pairs (synthetic; a dataset is evaluated whole)')
    p.add_argument('--seed', type=int, default=12345, help='pair sampling seed')
    p.add_argument('--style', choices=['vigor', 'kitti'], default='vigor')
    p.add_argument('--heading', choices=['unknown', 'prior'], default='unknown')
    p.add_argument('--aerial-side-m', type=float, default=64.0)
    p.add_argument('--top-k', type=int,
                   help='crops decoded per query (default: 5 in the gallery mode, the '
                        "runtime's 9 with --gnss-sigma-m)")
    p.add_argument('--gnss-sigma-m', type=float,
                   help='chained through the runtime instead: GNSS priors with this sigma gate '
                        'the candidates of --index (one --city), then pose, per frame')
    p.add_argument('--index', help='tile index of the --city (with --gnss-sigma-m; built if '
                   'missing)')
    p.add_argument('--calibration', help='covariance scales (with --gnss-sigma-m; default: '
                   "the checkpoint's own)")
    p.add_argument('--uncalibrated', action='store_true',
                   help='unit covariance scales (with --gnss-sigma-m)')
    p.add_argument('--camera', choices=['native', 'forward', *RIG_CHOICES], default='native',
                   help="with --gnss-sigma-m: the model's own input, a forward 90-degree "
                        'pinhole camera (512x288) with a heading prior, or a camera rig '
                        '(rig:front_rear, rig:surround4, rig:surround6: cameras of that size '
                        'around the vehicle; heading as --heading says)')
    p.add_argument('--heading-prior-deg', type=float, default=10.0,
                   help='heading prior half-width (--heading prior or --camera forward)')
    p.add_argument('--out', help='write the metrics as JSON')
    p.set_defaults(func=cmd_eval)

    p_abl = subparsers.add_parser('ablate', help='controlled comparisons of model variants')
    sub = subcommands(p_abl, 'ablate_command', 'ABLATION')
    p = sub.add_parser('query-modes', help='train free and anchored queries alike, then '
                       'evaluate both (learning curves, speed-up, held-out metrics)')
    p.add_argument('--config', help='training YAML shared by both runs')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                   help='training overrides shared by both runs, e.g. max_steps=2000')
    p.add_argument('--test-city', action='append', required=True,
                   help='held-out city folder (repeatable)')
    p.add_argument('--n', type=int, default=200, help='test pairs')
    p.add_argument('--seed', type=int, default=12345, help='test pair sampling seed')
    p.add_argument('--parallel', action='store_true',
                   help='train both at once (a GPU machine); default one after the other')
    p.add_argument('--eval-only', action='store_true', help='reuse the runs under --out')
    p.add_argument('--out', default='runs/ablate_query_modes', help='output folder')
    p.set_defaults(func=cmd_ablate_query_modes)


def cmd_train(args: argparse.Namespace) -> int:
    from ciper_ros.train.trainer import load_config, Trainer
    from ciper_ros.util.jsonio import dumps_json

    check_kv(args.overrides, 'override')
    trainer = Trainer(load_config(args.config, args.overrides))
    record = trainer.run()
    print(dumps_json({k: v for k, v in record.items() if not isinstance(v, dict)}), end='')
    print(f'checkpoint: {trainer.last_path}; log: {trainer.out / "metrics.jsonl"}')
    return 0


# ---------------------------------------------------------------------------- eval
TABLES = ('retrieval', 'gt_tile', 'chained', 'baseline_tile_centre')


def cmd_eval(args: argparse.Namespace) -> int:
    from ciper_ros.util.kv import parse_items

    if args.out:
        check_out_file(args.out)
    if args.baseline:
        return _eval_geometric(args)
    if not args.model:
        raise UserError('give --model CHECKPOINT (or --baseline geometric)')
    if args.gnss_sigma_m is not None:
        return _eval_localization(args)
    if args.dataset:
        if not args.root:
            raise UserError('--dataset needs --root FOLDER')
        from ciper_ros.experiments.pair_eval import evaluate_dataset

        result = evaluate_dataset(args.model, args.dataset, args.root,
                                  parse_items(args.options, what='--set'), top_k=args.top_k)
    elif args.city:
        from ciper_ros.experiments.pair_eval import evaluate_synthetic

        result = evaluate_synthetic(args.model, args.city, n=args.n, seed=args.seed,
                                    style=args.style, heading=args.heading,
                                    aerial_side_m=args.aerial_side_m, top_k=args.top_k)
    else:
        raise UserError('give --city FOLDER (synthetic) or --dataset KIND --root FOLDER')
    _write_result(result, args.out)
    _print_tables(result, TABLES)
    return 0


def _eval_localization(args: argparse.Namespace) -> int:
    """Chained through the runtime: GNSS-gated candidates, then pose (per frame)."""
    from ciper_ros.experiments.localization_eval import evaluate_localization

    if len(args.city) != 1 or not args.index:
        raise UserError('--gnss-sigma-m needs one --city and --index DIR (built if missing)')
    if args.calibration:
        check_in_file(args.calibration, '--calibration')
    with_heading_prior = args.heading == 'prior' or args.camera == 'forward'
    result = evaluate_localization(
        model=args.model, city=args.city[0], index_dir=args.index, n=args.n,
        prior_sigma_m=args.gnss_sigma_m, seed=args.seed, calibration=args.calibration,
        uncalibrated=args.uncalibrated, top_k=args.top_k, camera=args.camera,
        heading_prior_deg=args.heading_prior_deg if with_heading_prior else None)
    result['model'] = str(args.model)
    _write_result(result, args.out)
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f'{k:<{width}}  {v:.4g}' if isinstance(v, float) else f'{k:<{width}}  {v}')
    return 0


def _eval_geometric(args: argparse.Namespace) -> int:
    """Evaluate the non-learned baseline on the pairs `ciper eval` gives a model."""
    from ciper_ros.experiments.pair_eval import evaluate_geometric

    if not args.city:
        raise UserError('the geometric baseline runs on synthetic cities: give --city FOLDER')
    result = evaluate_geometric(args.city, model_path=args.model, n=args.n, seed=args.seed,
                                style=args.style, heading=args.heading,
                                aerial_side_m=args.aerial_side_m)
    _write_result(result, args.out)
    _print_tables(result, ('gt_tile',), suffix=' (geometric baseline)')
    return 0


def _write_result(result: dict, out: str | None) -> None:
    if out:
        from ciper_ros.util.jsonio import write_json

        write_json(out, result, indent=2)


def _print_tables(result: dict, names: tuple[str, ...], suffix: str = '') -> None:
    from ciper_ros.metrics.pose import markdown_table

    for name in names:
        print(markdown_table(result[name], title=name + suffix))


# ---------------------------------------------------------------------------- ablate
def cmd_ablate_query_modes(args: argparse.Namespace) -> int:
    from ciper_ros.experiments import ablate

    check_kv(args.overrides, 'override')
    out = check_out_dir(args.out)
    runs = {m: out / m for m in ablate.MODES}
    if not args.eval_only:
        how = 'in parallel' if args.parallel else 'one after the other'
        print(f'training {", ".join(runs)} ({how}); logs in {out}/<mode>/train.log',
              flush=True)
        ablate.train_modes(args.config, args.overrides, out, parallel=args.parallel)
    for mode, run in runs.items():
        if not (run / 'last.pt').is_file():
            raise UserError(f'no checkpoint for {mode}: {run / "last.pt"} (train first)')
    result = ablate.compare(runs, test_cities=args.test_city, n=args.n, seed=args.seed)
    paths = ablate.write_report(result, out)
    print(paths['md'].read_text())
    print('wrote ' + ', '.join(str(p) for p in paths.values()))
    return 0
