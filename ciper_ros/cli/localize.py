"""``ciper localize``, ``ciper calibrate`` and ``ciper export``: the runtime offline.

``localize`` and ``calibrate`` run the node's per-frame pipeline
(:mod:`ciper_ros.bag.offline`) on a recording (rosbag2, ROS 1) or an image folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ciper_ros.cli.common import (
    add_topic_args,
    bag_topics,
    check_in_file,
    check_out_dir,
    check_out_file,
    latlon,
    latlon_sigma,
)
from ciper_ros.util.errors import UserError

DEFAULT_PRIOR_SIGMA_M = 10.0           # --prior LAT,LON without a sigma


def _localizer_args(p: argparse.ArgumentParser, *, images: str) -> None:
    """Arguments shared by `ciper localize` and `ciper calibrate`."""
    p.add_argument('--index', required=True, help='tile index directory (ciper index build)')
    p.add_argument('--model', help='the checkpoint the index was built with (default: the '
                   'shipped model)')
    p.add_argument('--images', required=True, help=images)
    p.add_argument('--backend', choices=['torch', 'onnxruntime', 'tensorrt'], default='torch')
    p.add_argument('--export', help='ONNX export directory (onnxruntime / tensorrt)')
    p.add_argument('--map', help='map store (default: the one the index was built from)')
    add_topic_args(p)
    p.add_argument('--datum', type=latlon,
                   help="LAT,LON of the truth frame (default: the bag's ciper_drive.json)")
    p.add_argument('--top-k', type=int,
                   help="candidate tiles decoded per frame (default: the runtime's, 9)")
    p.add_argument('--camera-x-m', type=float, default=0.0,
                   help='base_link -> camera when /tf_static has no chain to the image frame')
    p.add_argument('--camera-y-m', type=float, default=0.0)
    p.add_argument('--camera-yaw-rad', type=float, default=0.0)
    p.add_argument('--min-match-prob', type=float,
                   help="reject frames below this match probability, 0..1 (default: the "
                        "checkpoint's calibrated threshold per camera kind)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser('localize', help='localize the frames of an image folder or a '
                              'recording (rosbag2, ROS 1) against a tile index; CSV or JSON '
                              'out')
    _localizer_args(p, images='image folder, rosbag2 (folder or file) or ROS 1 bag')
    p.add_argument('--prior', type=latlon_sigma,
                   help='LAT,LON[,SIGMA_M] for every frame (folders; bags use their GNSS '
                        f'fixes; default sigma {DEFAULT_PRIOR_SIGMA_M:g} m)')
    p.add_argument('--no-prior', action='store_true',
                   help='search the whole index (kidnapped vehicle)')
    p.add_argument('--calibration', help='covariance scales from ciper calibrate (JSON)')
    p.add_argument('--max-prior-sigma-m', type=float,
                   help='reject frames whose prior is broader (GNSS dropouts inflate it; '
                        "default: the node's rule)")
    p.add_argument('--max-fix-age-s', type=float,
                   help='a GNSS fix older than this (before the image) is stale (default: the '
                        "node's rule)")
    p.add_argument('--out', required=True, help='results: .csv or .json')
    p.set_defaults(func=cmd_localize)

    p = subparsers.add_parser('calibrate', help='covariance scale factors from a recorded '
                              'drive with ground truth (validation data)')
    _localizer_args(p, images='recording with ground truth (rosbag2 or ROS 1; ciper synth '
                    'drive writes one)')
    p.add_argument('--statistic', choices=('p95', 'median'), default='p95',
                   help='fit the 95 %% ellipse to 95 %% of errors (p95, default) or the '
                        'median normalised error to the chi-square median')
    p.add_argument('--out', required=True, help='calibration JSON to write')
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser('export', help='ONNX graphs (ground encoder, aerial encoder, '
                              'pose decoder), each checked against torch in onnxruntime')
    p.add_argument('--model', required=True, help='checkpoint (.pt)')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--decoder-batch', type=int,
                   help="candidates decoded per run of the decoder graph (default: the "
                        "runtime's top_k, 9)")
    p.set_defaults(func=cmd_export)


def _source(args: argparse.Namespace) -> Path:
    """Return the ``--images`` path (checked before any work)."""
    src = Path(args.images)
    if not src.exists():
        raise UserError(f'{src} does not exist')
    return src


def _open_localizer(args: argparse.Namespace, *, calibration: str | None = None):
    from ciper_ros.runtime.assemble import open_localizer
    from ciper_ros.runtime.localizer import LocalizerConfig

    return open_localizer(index=args.index, model=args.model, map_path=args.map,
                          backend=args.backend, export_dir=args.export, calibration=calibration,
                          config=LocalizerConfig(top_k=args.top_k or LocalizerConfig.top_k),
                          min_match_prob=args.min_match_prob)


def _pipeline_config(args: argparse.Namespace, **policy):
    from ciper_ros.runtime.gnss import FixPolicy
    from ciper_ros.runtime.mount import Mount
    from ciper_ros.runtime.pipeline import PipelineConfig

    return PipelineConfig(fix_policy=FixPolicy(**{k: v for k, v in policy.items()
                                                  if v is not None}),
                          mount=Mount(args.camera_x_m, args.camera_y_m, args.camera_yaw_rad))


def cmd_localize(args: argparse.Namespace) -> int:
    # the arguments first, before the heavy imports and any work
    check_out_file(args.out)
    if args.calibration:
        check_in_file(args.calibration, '--calibration')
    src = _source(args)
    topics = bag_topics(args)

    from ciper_ros.bag.offline import offline_records
    from ciper_ros.bag.reader import is_bag
    from ciper_ros.metrics.frames import summarize
    from ciper_ros.runtime.frames import write_records
    from ciper_ros.runtime.localizer import Prior
    from ciper_ros.util.jsonio import dumps_json

    if not is_bag(src) and args.prior is None and not args.no_prior:
        raise UserError('an image folder needs --prior LAT,LON[,SIGMA_M] or --no-prior')
    prior = None
    if args.prior:
        lat, lon, sigma_m = args.prior
        prior = Prior(lat, lon, sigma_m=sigma_m or DEFAULT_PRIOR_SIGMA_M)
    config = _pipeline_config(args, max_prior_sigma_m=args.max_prior_sigma_m,
                              max_fix_age_s=args.max_fix_age_s)
    loc = _open_localizer(args, calibration=args.calibration)
    records = offline_records(loc, src, config=config, topics=topics, datum_latlon_deg=args.datum,
                              prior=prior, use_gnss=not args.no_prior)
    write_records(records, args.out)
    print(dumps_json(summarize(records)), end='')
    print(f'wrote {args.out} ({len(records)} frames)')
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    check_out_file(args.out)
    src = _source(args)
    topics = bag_topics(args)

    from ciper_ros.bag.offline import calibrate_recording
    from ciper_ros.util.jsonio import dumps_json, write_json

    loc = _open_localizer(args)
    result = calibrate_recording(loc, src, config=_pipeline_config(args), topics=topics,
                                 datum_latlon_deg=args.datum, statistic=args.statistic)
    result.update(model_sha256=loc.index.info['model_sha256'], top_k=loc.cfg.top_k)
    write_json(args.out, result)
    print(dumps_json(result), end='')
    print(f'wrote {args.out}: use it with ciper localize --calibration {args.out}')
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.export import export_onnx

    report = export_onnx(args.model, check_out_dir(args.out), decoder_batch=args.decoder_batch)
    for name, g in report['graphs'].items():
        worst = max(g['relative_error'].values())
        print(f'{args.out}/{name}: inputs {g["inputs"]}; onnxruntime vs torch max relative '
              f'error {worst:.1e}')
    print(f'wrote {args.out}/export.json (opset {report["opset"]}, model '
          f'{report["model_sha256"][:12]})')
    return 0
