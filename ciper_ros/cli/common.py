"""What every command group shares: the parser class, argument types, path checks.

Nothing here imports more than the standard library at module level, so building the whole
parser (``ciper --help``) stays fast; the types import what they need when they run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import re
import sys

from ciper_ros.util.errors import UserError

# a value that reads as numbers and starts with '-': '-33.87,151.21', '-70.7,-33.9,...', '-1e-3'
_NEGATIVE_VALUE = re.compile(r'-\.?\d[0-9.,eE+-]*\Z')


class CiperParser(argparse.ArgumentParser):
    """An ArgumentParser that takes ``--datum -33.87,151.21`` as ``--datum=-33.87,151.21``.

    argparse counts only a lone ``-N`` / ``-N.M`` as a negative number, so a coordinate pair
    of the southern or western hemisphere after its option reads as an unknown option
    ("expected one argument"). Before parsing, a value that reads as numbers and follows a
    long option taking one value is joined to it with ``=``, the form argparse already
    accepts. Subparsers are of this class too (argparse makes them of the parent's class),
    so every level joins its own options.
    """

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._join_negative_values(args), namespace)

    def _join_negative_values(self, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == '--':                          # the rest is positional as written
                return out + args[i:]
            action = self._option_string_actions.get(arg)
            if (action is not None and action.nargs is None and arg.startswith('--')
                    and i + 1 < len(args) and _NEGATIVE_VALUE.match(args[i + 1])):
                out.append(f'{arg}={args[i + 1]}')
                i += 2
                continue
            out.append(arg)
            i += 1
        return out


def subcommands(parser: argparse.ArgumentParser, dest: str, metavar: str):
    """Add the required subcommand level of a command group (``ciper map info|crop|...``)."""
    return parser.add_subparsers(dest=dest, metavar=metavar, required=True)


# ----------------------------------------------------------------------- argument types
def _numbers(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        values = []
    if len(values) not in n:
        raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return values


def _check_latlon(lat: float, lon: float, text: str) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise argparse.ArgumentTypeError(f'{text!r} is not a valid latitude,longitude')


def latlon(text: str) -> tuple[float, float]:
    """``'LAT,LON'`` in degrees."""
    lat, lon = _numbers(text, (2,), "'LAT,LON' in degrees")
    _check_latlon(lat, lon, text)
    return lat, lon


def latlon_sigma(text: str) -> tuple[float, float, float | None]:
    """``'LAT,LON[,SIGMA_M]'``: a position prior; sigma None when not given."""
    v = _numbers(text, (2, 3), "'LAT,LON' or 'LAT,LON,SIGMA_M' (degrees, metres)")
    _check_latlon(v[0], v[1], text)
    if len(v) == 3 and not v[2] > 0:
        raise argparse.ArgumentTypeError(f'the sigma of {text!r} must be positive (metres)')
    return v[0], v[1], v[2] if len(v) == 3 else None


def area(text: str):
    """``'WEST,SOUTH,EAST,NORTH'`` in degrees -> LatLonBounds."""
    from ciper_ros.geo.bounds import LatLonBounds

    try:
        return LatLonBounds.from_string(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def zooms(text: str) -> list[int]:
    """``'18,19'`` -> sorted unique zoom levels in [0, 24]."""
    try:
        levels = sorted({int(v) for v in text.split(',') if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated zoom levels, got {text!r}') from None
    if not levels or levels[0] < 0 or levels[-1] > 24:
        raise argparse.ArgumentTypeError(f'zoom levels must be in [0, 24], got {text!r}')
    return levels


def shard(text: str) -> tuple[int, int]:
    """``'I/N'``: shard I of N."""
    try:
        i, n = (int(v) for v in text.split('/'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected I/N (e.g. 0/4), got {text!r}') from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f'shard {text}: need 0 <= I < N')
    return i, n


# ----------------------------------------------------------------------- path checks
# Run first in a handler, so a wrong path fails in a second, not after the long work.
def check_out_file(path: str | os.PathLike, option: str = '--out') -> Path:
    """Check a file to write: not an existing directory."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f'{option} {p} is a directory; give the file to write')
    return p


def check_out_dir(path: str | os.PathLike, option: str = '--out') -> Path:
    """Check a directory to write into: not an existing file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f'{option} {p} is an existing file; give a directory')
    return p


def check_in_file(path: str | os.PathLike, option: str) -> Path:
    """Check a file to read: it exists and is not a directory."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f'{option} {p} is a directory; give the file')
    if not p.exists():
        raise UserError(f'{option} {p} does not exist')
    return p


def check_kv(items: list[str], what: str) -> None:
    """Fail early on a malformed KEY=VALUE item (the values are parsed where they are used)."""
    from ciper_ros.util.kv import parse_items

    parse_items(items, what=what)


def write_rgb_image(path: str | os.PathLike, image_rgb) -> Path:
    """Write an RGB uint8 image (format from the extension); parents are created."""
    import cv2

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok = cv2.imwrite(str(p), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    except cv2.error:                  # OpenCV 4 raises for an extension it has no writer for
        ok = False
    if not ok:
        raise UserError(f'could not write {p} (not an image extension OpenCV writes?)')
    return p


# ----------------------------------------------------------------------- recordings
IMAGE_TOPIC_HELP = ('image topic (default: the first of /camera_pano/image_raw/compressed, '
                    '/camera/image_raw/compressed, /camera/image_raw)')


def add_topic_args(p: argparse.ArgumentParser) -> None:
    """Add the topics of a recording: every offline command takes the same options."""
    p.add_argument('--image-topic', help=IMAGE_TOPIC_HELP)
    p.add_argument('--camera-info-topic',
                   help='CameraInfo topic (default: <image namespace>/camera_info)')
    p.add_argument('--gnss-topic', help="NavSatFix topic (default: /gnss/fix when recorded; "
                   "'' for none)")
    p.add_argument('--odom-topic', help="Odometry topic for map -> odom (default: /odom when "
                   "recorded; '' for none)")
    p.add_argument('--truth-topic', default='/ground_truth/pose',
                   help='ground truth of base_link: PoseStamped, PoseWithCovarianceStamped or '
                        'Odometry in a local ENU frame (default: %(default)s)')


def bag_topics(args: argparse.Namespace):
    """Return the :class:`~ciper_ros.bag.reader.BagTopics` the topic options name."""
    from ciper_ros.bag.reader import BagTopics

    return BagTopics(image=args.image_topic, camera_info=args.camera_info_topic,
                     gnss=args.gnss_topic, odom=args.odom_topic, truth=args.truth_topic)


# ciper_ros.geo.camera.RIG_PRESETS spelled out, so that --help imports no numpy
# (test/test_geo_reproject.py keeps them equal)
RIG_PRESETS = ('forward', 'front_rear', 'surround4', 'surround6')
