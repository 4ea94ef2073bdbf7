"""The ``ciper`` command: one entry point, one subcommand per job.

Heavy modules are imported inside the handlers, so ``ciper --help`` stays fast and a missing
optional package only affects the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from ciper_ros import __version__


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _latlon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'LAT,LON' in degrees, got {text!r}") from None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise argparse.ArgumentTypeError(f'{text!r} is not a valid latitude,longitude')
    return lat, lon


def _zooms(text: str) -> list[int]:
    try:
        zooms = sorted({int(v) for v in text.split(',') if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated zoom levels, got {text!r}') from None
    if not zooms or zooms[0] < 0 or zooms[-1] > 24:
        raise argparse.ArgumentTypeError(f'zoom levels must be in [0, 24], got {text!r}')
    return zooms


# ---------------------------------------------------------------------------- map
def cmd_map_info(args: argparse.Namespace) -> int:
    from ciper_ros.geo import mercator
    from ciper_ros.maps import open_store

    with open_store(args.map) as store:
        meta = store.metadata
        lat_c, _ = meta.bounds.center_latlon_deg
        per_zoom = {z: store.tile_count(z) for z in meta.zooms}
        info = {
            'path': str(args.map),
            'type': type(store).__name__,
            'name': meta.name,
            'format': meta.format,
            'tile_px': meta.tile_px,
            'bounds': {'west_deg': meta.bounds.west_deg, 'south_deg': meta.bounds.south_deg,
                       'east_deg': meta.bounds.east_deg, 'north_deg': meta.bounds.north_deg},
            'minzoom': meta.minzoom,
            'maxzoom': meta.maxzoom,
            'tile_count': sum(per_zoom.values()),
            'tiles_per_zoom': per_zoom,
            'm_per_px_at_center': {
                z: round(mercator.ground_resolution_m_per_px(lat_c, z, tile_px=meta.tile_px), 6)
                for z in meta.zooms},
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']} ({info['type']}, {meta.format}, {meta.tile_px} px tiles)")
    print(f'  name:     {meta.name}')
    print(f'  bounds:   {meta.bounds}')
    print(f'  zooms:    {meta.minzoom}..{meta.maxzoom}')
    print(f"  tiles:    {info['tile_count']}")
    for z in meta.zooms:
        print(f"    z{z:<2d} {per_zoom[z]:>8d} tiles  "
              f"{info['m_per_px_at_center'][z]:.4f} m/px at the centre latitude")
    return 0


def cmd_map_crop(args: argparse.Namespace) -> int:
    import cv2

    from ciper_ros.maps import open_store

    with open_store(args.map) as store:
        crop = store.crop(args.center, args.side_m, args.side_px, zoom=args.zoom,
                          missing='fill' if args.fill_missing else 'error')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(crop.image_rgb, cv2.COLOR_RGB2BGR)):
        raise CliError(f'could not write {out} (unsupported extension?)')
    print(f'wrote {out}: {crop.side_px}x{crop.side_px} px, {crop.m_per_px:.4f} m/px, '
          f'from zoom {crop.zoom}')
    return 0


def cmd_map_pattern(args: argparse.Namespace) -> int:
    import numpy as np

    from ciper_ros.geo import LatLonBounds, LocalTangentPlane
    from ciper_ros.maps import MBTilesWriter, write_pyramid, XYZWriter
    from ciper_ros.maps.pattern import grid_sampler

    plane = LocalTangentPlane(*args.center)
    h = args.size_m / 2.0
    ll = plane.latlon_from_xy_m(np.array([[-h, -h], [h, h]]))
    bounds = LatLonBounds(ll[0, 1], ll[0, 0], ll[1, 1], ll[1, 0])
    out = Path(args.out)
    if out.suffix == '.mbtiles':
        writer = MBTilesWriter(out, name='ciper metric grid', fmt=args.format, bounds=bounds,
                               resume=True, overwrite=args.overwrite)
    else:
        writer = XYZWriter(out, name='ciper metric grid', fmt=args.format, bounds=bounds)
    with writer:
        n = write_pyramid(writer, plane=plane, sampler=grid_sampler(spacing_m=args.spacing_m),
                          bounds=bounds, zooms=args.zooms, desc='pattern tiles')
    print(f'wrote {out}: {n} new tiles, {args.size_m:g} m square at {args.center}, '
          f'zooms {args.zooms}, grid every {args.spacing_m:g} m')
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ciper_ros.demo import run_demo

    metrics = run_demo(args.out)
    if metrics['marker_error_px_max'] > 1.0:
        raise CliError(f"crop geolocation check failed: max marker error "
                       f"{metrics['marker_error_px_max']:.3f} px > 1 px")
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ciper', description='CIPER cross-view localization: maps, training, runtime.')
    parser.add_argument('--version', action='version', version=f'ciper_ros {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    p_map = sub.add_parser('map', help='inspect and crop map imagery stores')
    map_sub = p_map.add_subparsers(dest='map_command', metavar='MAP_COMMAND')
    map_sub.required = True

    p = map_sub.add_parser('info', help='bounds, zooms and tile counts of a map')
    p.add_argument('map', help='MBTiles file or XYZ tile folder')
    p.add_argument('--json', action='store_true', help='print machine-readable JSON')
    p.set_defaults(func=cmd_map_info)

    p = map_sub.add_parser('crop', help='write a north-up metric crop as an image')
    p.add_argument('map', help='MBTiles file or XYZ tile folder')
    p.add_argument('--center', type=_latlon, required=True, help='crop centre LAT,LON (deg)')
    p.add_argument('--side-m', type=float, default=64.0, help='crop side in metres')
    p.add_argument('--side-px', type=int, default=256, help='crop side in pixels')
    p.add_argument('--zoom', type=int, default=None,
                   help='source zoom (default: coarsest zoom at least as fine as the crop)')
    p.add_argument('--fill-missing', action='store_true',
                   help='paint missing tiles black instead of failing')
    p.add_argument('--out', required=True, help='output image (.png or .jpg)')
    p.set_defaults(func=cmd_map_crop)

    p = map_sub.add_parser('pattern', help='write a metric test-grid map (MBTiles or XYZ)')
    p.add_argument('out', help='output: *.mbtiles file, or a folder for XYZ tiles')
    p.add_argument('--center', type=_latlon, default=(48.137, 11.575),
                   help='centre LAT,LON (deg)')
    p.add_argument('--size-m', type=float, default=400.0, help='side of the square area (m)')
    p.add_argument('--zooms', type=_zooms, default=[18, 19], help='zoom levels, e.g. 18,19')
    p.add_argument('--spacing-m', type=float, default=10.0, help='grid line spacing (m)')
    p.add_argument('--format', default='png', choices=['png', 'jpg'], help='tile format')
    p.add_argument('--overwrite', action='store_true', help='replace an existing file')
    p.set_defaults(func=cmd_map_pattern)

    p = sub.add_parser('demo', help='run the end-to-end demo on the embedded default data')
    p.add_argument('--out', default='out/demo', help='output folder')
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ciper_ros.maps.errors import MapStoreError

    try:
        return int(args.func(args) or 0)
    except (CliError, MapStoreError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f'ciper: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('ciper: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
