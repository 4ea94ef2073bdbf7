"""``ciper bag replay|eval``: replay a recorded drive over DDS; evaluate the localizer on it.

Recordings are rosbag2 (mcap, sqlite3) or ROS 1 bags (``ciper_ros.bag.reader``).
"""

from __future__ import annotations

import argparse
import math
import sys

from ciper_ros.cli.common import add_topic_args, bag_topics, check_out_dir, latlon, subcommands
from ciper_ros.util.errors import UserError


def add_parser(subparsers) -> None:
    p_bag = subparsers.add_parser('bag', help='replay a rosbag2 over DDS; evaluate the '
                                  'localizer on it')
    sub = subcommands(p_bag, 'bag_cmd', 'COMMAND')

    p = sub.add_parser('replay', help='publish a bag at bag time with /clock (like ros2 bag '
                       'play --clock)')
    p.add_argument('bag', help='rosbag2 folder or file (mcap, sqlite3) or ROS 1 .bag')
    p.add_argument('--rate', type=float, default=1.0, help='playback speed factor')
    p.add_argument('--topic', action='append', help='replay only this topic (repeatable)')
    p.add_argument('--wait-for', action='append', metavar='TOPIC',
                   help='start once TOPIC has a subscriber (repeatable)')
    p.add_argument('--wait-timeout-s', type=float, default=60.0)
    p.add_argument('--no-clock', action='store_true', help='do not publish /clock')
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser('eval', help='localize a recorded drive (offline, or through the live '
                       'node with --online) and write a report')
    p.add_argument('bag', help='recording with images, GNSS and ground truth (rosbag2 or ROS 1)')
    p.add_argument('--index', required=True, help='tile index directory (ciper index build)')
    p.add_argument('--model', help='checkpoint the index was built with (default: shipped)')
    p.add_argument('--online', action='store_true',
                   help='run the real localize_node under use_sim_time and replay the bag to it')
    p.add_argument('--rate', type=float, default=1.0, help='replay speed (--online)')
    add_topic_args(p)
    p.add_argument('--datum', type=latlon,
                   help='LAT,LON of the truth frame (default: ciper_drive.json)')
    p.add_argument('--param', action='append', default=[], metavar='KEY=VALUE',
                   help='a node parameter (repeatable), e.g. top_k=3')
    p.add_argument('--baseline', choices=('auto', 'tuned', 'default', 'off'), default='auto',
                   help='the GNSS + wheel-odometry EKF (robot_localization-like) on the same '
                        'drive: tuned on its ground truth, default parameters, or off; auto: '
                        'tuned when the bag has odometry, fixes and truth (default)')
    p.add_argument('--track', choices=('auto', 'on', 'off'), default='auto',
                   help='CIPER through the drive tracker (odometry, GNSS, the per-frame '
                        'results) beside the per-frame estimate; auto: when the bag has '
                        'odometry (default)')
    p.add_argument('--out', default='out/bag_eval', help='report folder')
    p.set_defaults(func=cmd_eval)


def cmd_replay(args: argparse.Namespace) -> int:
    from ciper_ros.bag.replay import replay

    try:
        res = replay(args.bag, rate=args.rate, topics=args.topic or None,
                     wait_for=args.wait_for or None, wait_timeout_s=args.wait_timeout_s,
                     clock=not args.no_clock)
    except (TimeoutError, ImportError) as e:
        raise UserError(str(e)) from None
    for topic, why in res['skipped'].items():
        print(f'skipped {topic}: {why}', file=sys.stderr)
    if res['unacknowledged']:
        print(f"not acknowledged by every subscriber before exit: {res['unacknowledged']}",
              file=sys.stderr)
    print(f"replayed {res['messages']} messages ({res['duration_s']:.1f} s of bag time) on "
          f"{len(res['topics'])} topics")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ciper_ros.util.kv import parse_items

    # the arguments first, before the heavy imports, any work and any DDS participant
    overrides = parse_items(args.param, what='--param')
    bag, out = Path(args.bag), check_out_dir(args.out)
    if not bag.exists():
        raise UserError(f'bag {bag} does not exist')
    topics = bag_topics(args)

    from ciper_ros.experiments.bag_eval import (
        check_node_params,
        NodeRunError,
        offline_records,
        online_records,
    )
    from ciper_ros.experiments.report import write_report
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.maps.open import open_store
    from ciper_ros.ros.params import NodeParams
    from ciper_ros.runtime.index import read_info

    check_node_params(overrides)
    params = NodeParams.from_dict({'index': args.index, 'model': args.model or '',
                                   **overrides})
    info = read_info(Path(args.index))
    meta = {'bag': str(bag), 'index': args.index, 'model': args.model or 'shipped default',
            'mode': 'online' if args.online else 'offline', 'rate': args.rate,
            'model_sha256': info['model_sha256'], 'node_parameters': overrides}
    if args.online:
        out.mkdir(parents=True, exist_ok=True)
        try:
            records, run = online_records(bag, index=args.index, model=args.model,
                                          node_params=overrides, topics=topics,
                                          rate=args.rate, datum=args.datum,
                                          log_path=out / 'node.log')
        except NodeRunError as e:
            raise UserError(f'{e}: {out / "node.log"}') from None
        meta.update(run)
    else:
        from ciper_ros.runtime.assemble import open_localizer

        loc = open_localizer(**params.localizer_args())
        records = offline_records(loc, bag, params=params, topics=topics, datum=args.datum)
    store = open_store(params.map or info['map_path'])
    plane = LocalTangentPlane(*info['datum_latlon_deg'])
    series, series_info = _series(args, bag, topics, plane, params)
    m = write_report(out, records, meta=meta, store=store, plane=plane, zoom=info['zoom'],
                     series=series, series_info=series_info)
    print(_headline(m))
    from ciper_ros.experiments.report import SERIES

    for k in series:
        b = m[k]
        print(f"{SERIES[k][0]} on the same drive: median "
              f"{b.get('position_error_m_median', math.nan):.2f} m, p95 "
              f"{b.get('position_error_m_p95', math.nan):.2f} m")
    print(f'report: {out / "report.md"} (plots, frames.csv, metrics.json)')
    return 0


def _series(args: argparse.Namespace, bag, topics, plane, params) -> tuple[dict, dict]:
    """Run the estimates shown beside the per-frame one: ({key: records}, {key: info}).

    Tracked: the node's pipeline with its tracker, offline (in both modes: an online run's
    tracked poses are stamped at odometry, not at frames).
    """
    if args.baseline == 'off' and args.track == 'off':
        return {}, {}
    from ciper_ros.bag.reader import read_recording
    from ciper_ros.experiments.baseline_eval import baseline_records
    from ciper_ros.experiments.tracking_eval import tracked_records

    series, info = {}, {}
    rec = read_recording(bag, topics)
    try:
        if args.track == 'on' and not rec.odometry:
            raise UserError('--track on needs odometry: the bag has none (--odom-topic)')
        if args.track != 'off' and rec.odometry:
            from ciper_ros.runtime.assemble import open_localizer

            series['tracked'], info['tracked'] = tracked_records(
                open_localizer(**params.localizer_args()), bag,
                config=params.pipeline_config(), topics=topics, datum=args.datum,
                tracker_config=params.tracker_config())
        if args.baseline != 'off':
            missing = [what for what, have in (('odometry', rec.odometry),
                                               ('GNSS fixes', rec.fixes),
                                               ('ground truth', len(rec.truth))) if not have]
            if args.baseline == 'auto' and missing:
                print(f"no GNSS + odometry baseline: the bag has no {', '.join(missing)} "
                      '(--baseline off silences this)', file=sys.stderr)
            else:
                series['baseline'], info['baseline'] = baseline_records(
                    rec, plane=plane, datum_latlon_deg=args.datum,
                    tune=args.baseline != 'default')
    finally:
        rec.bag.close()
    return series, info


def _headline(m: dict) -> str:
    def g(k, fmt='{:.2f}'):
        return fmt.format(m[k]) if k in m else '-'

    return (f"{m['localized']}/{m['frames']} frames localized; position error median "
            f"{g('position_error_m_median')} m, p95 {g('position_error_m_p95')} m (GNSS prior "
            f"on the same frames: {g('prior_error_m_localized_median')} m, p95 "
            f"{g('prior_error_m_localized_p95')} m); heading median "
            f"{g('heading_error_deg_median')} deg; latency median "
            f"{g('latency_ms_median', '{:.0f}')} ms, p95 {g('latency_ms_p95', '{:.0f}')} ms")
