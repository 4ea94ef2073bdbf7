"""``ciper model build|finalize|check|snapshot``: the default model recipe (``make model``)."""

from __future__ import annotations

import argparse

from ciper_ros.cli.common import check_kv, check_out_dir, check_out_file, subcommands


def _finalize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--source', help="weights to finalize (default: the run's last.pt, else "
                   'the progress snapshot)')
    p.add_argument('--out-model', default='models/ciper_t_synthetic.pt')
    p.add_argument('--card', default='models/MODEL_CARD.md',
                   help='model card (model_card.json and training_curve.png beside it)')
    p.add_argument('--frames', type=int, help='chained test frames per camera (default 200)')
    p.add_argument('--calibration-frames', type=int,
                   help='validation frames per camera (default 200)')
    p.add_argument('--pairs', type=int, help='GT-crop pairs per camera (default 300)')
    p.add_argument('--test-seeds', type=int, nargs='+',
                   help='v2 models: the test cities evaluated (default 0 1 2)')
    p.add_argument('--held-out-appearance',
                   help="v2 models: the appearance preset test seed 0 is also judged under "
                        "(default dry_south; '' for none)")
    p.add_argument('--note', action='append', default=[],
                   help="a line for the card's training history (repeatable)")


def add_parser(subparsers) -> None:
    p_model = subparsers.add_parser('model', help='the default model recipe (make model)')
    sub = subcommands(p_model, 'model_cmd', 'COMMAND')

    p = sub.add_parser('build', help='cities, render bank, training: each stage resumable; '
                       'run again to continue')
    p.add_argument('--work-dir', default='runs/default_model', help='everything goes here')
    p.add_argument('--config', default='config/train/default_model_v2.yaml',
                   help='training config (config/train/default_model.yaml: the v1 model)')
    p.add_argument('--cities', type=int, default=128, help='training cities (seeds 1000..)')
    p.add_argument('--renders-per-city', type=int, default=96)
    p.add_argument('--appearance', choices=('default', 'random'), default='random',
                   help='training cities under the default look, or each under an '
                        'appearance preset drawn by seed (the held-out preset never)')
    p.add_argument('--minutes', type=float, default=0.0,
                   help='wall-clock budget of this run (0: train to max_steps)')
    p.add_argument('--no-finalize', action='store_true',
                   help='train only (no calibration, evaluation, shipped model or card)')
    p.add_argument('--prepare-only', action='store_true',
                   help='make the cities and the render bank, then stop (e.g. the ablation '
                        "suite's bank: --cities 16)")
    _finalize_args(p)
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                   help='training config overrides, e.g. max_steps=100')
    p.set_defaults(func=cmd_build)

    p = sub.add_parser('finalize', help='calibrate on the validation city, evaluate on the '
                       'test city, write the shipped model and its card')
    p.add_argument('--work-dir', default='runs/default_model')
    _finalize_args(p)
    p.set_defaults(func=cmd_finalize)

    p = sub.add_parser('check', help="rerun the model card's chained evaluation and compare "
                       '(exit 1 when a metric is off by more than 5 %%)')
    p.add_argument('--model', default='models/ciper_t_synthetic.pt')
    p.add_argument('--card-json', default='models/model_card.json')
    p.add_argument('--city', help='the test city folder (default: regenerated from its seed)')
    p.add_argument('--index', help='tile index folder to use or build (default: temporary)')
    p.set_defaults(func=cmd_check)

    p = sub.add_parser('snapshot', help="write the run's progress (float16) to "
                       'models/progress/default_model.pt for the repository')
    p.add_argument('--work-dir', default='runs/default_model')
    p.add_argument('--out', help='default: models/progress/default_model.pt')
    p.set_defaults(func=cmd_snapshot)


def _check_finalize_outputs(args: argparse.Namespace) -> None:
    check_out_file(args.out_model, '--out-model')
    check_out_file(args.card, '--card')


def cmd_build(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.recipe import ModelRecipe, train

    check_kv(args.overrides, 'override')
    check_out_dir(args.work_dir, '--work-dir')
    if not (args.no_finalize or args.prepare_only):
        _check_finalize_outputs(args)
    recipe = ModelRecipe(work_dir=args.work_dir, train_config=args.config,
                         n_train_cities=args.cities, renders_per_city=args.renders_per_city,
                         overrides=args.overrides, appearance=args.appearance)
    if args.prepare_only:
        from ciper_ros.experiments.recipe import prepare
        bank, _ = prepare(recipe)
        print(f'cities in {recipe.root / "cities"}, render bank {bank}')
        return 0
    state = train(recipe, minutes=args.minutes)
    print(f"step {state['step']} of {state['max_steps']} after {state['train_hours']:.2f} h "
          f"of training; checkpoint {state['checkpoint']}"
          + ('' if state['finished'] else ' (run the same command again to continue)'))
    if args.no_finalize:
        return 0
    return _finalize(recipe, args)


def cmd_finalize(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.recipe import ModelRecipe

    _check_finalize_outputs(args)
    source = args.source or ModelRecipe(work_dir=args.work_dir).resume_source()
    return _finalize(ModelRecipe.of_run(args.work_dir, source), args)


def _finalize(recipe, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ciper_ros.experiments.finalize import finalize, PROTOCOL

    protocol = replace(PROTOCOL, **{k: getattr(args, k) for k in (
        'frames', 'calibration_frames', 'pairs', 'held_out_appearance')
        if getattr(args, k) is not None})
    if args.test_seeds:
        protocol = replace(protocol, test_seeds=tuple(args.test_seeds))
    data = finalize(recipe, source=args.source, out_model=args.out_model, card=args.card,
                    protocol=protocol, notes=tuple(args.note))
    for r in data['targets']:
        print(f"{r['camera']:<9} {r['metric']:<26} {r['value']:9.3f}  target {r['how']} "
              f"{r['target']}  {'met' if r['met'] else 'not met'}")
    print(f"wrote {args.out_model} ({data['size_bytes'] / 1e6:.1f} MB, calibrated) and "
          f'{args.card} in {data["finalize_s"]:.0f} s')
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.finalize import check

    res = check(model=args.model, card_json=args.card_json, city=args.city,
                index_dir=args.index)
    for cam, rows in res['cameras'].items():
        for r in rows:
            print(f"{cam:<9} {r['metric']:<26} card {r['card']:9.4f}  now {r['now']:9.4f}  "
                  f"{'ok' if r['ok'] else 'DIFFERS'}")
    print('the model card reproduces' if res['ok'] else 'the model card does NOT reproduce')
    return 0 if res['ok'] else 1


def cmd_snapshot(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.recipe import ModelRecipe, snapshot

    if args.out:
        check_out_file(args.out)
    path = snapshot(ModelRecipe.of_run(args.work_dir), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): commit it; a fresh clone's "
          '`make model` continues from it')
    return 0
