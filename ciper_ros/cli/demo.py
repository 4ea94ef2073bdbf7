"""``ciper demo``: the end-to-end demo on the embedded default data."""

from __future__ import annotations

import argparse

from ciper_ros.cli.common import check_out_dir
from ciper_ros.util.errors import CiperError

MAX_MARKER_ERROR_PX = 1.0              # the crop geolocation check of the demo's first stage


def add_parser(subparsers) -> None:
    p = subparsers.add_parser('demo', help='run the end-to-end demo on the embedded default '
                              'data')
    p.add_argument('--out', default='out/demo', help='output folder')
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.demo import run_demo

    metrics = run_demo(check_out_dir(args.out))
    if metrics['marker_error_px_max'] > MAX_MARKER_ERROR_PX:
        raise CiperError(f"crop geolocation check failed: max marker error "
                         f"{metrics['marker_error_px_max']:.3f} px > {MAX_MARKER_ERROR_PX:g} px")
    return 0
