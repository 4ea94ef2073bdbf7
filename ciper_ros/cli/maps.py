"""``ciper map info|crop|pattern``: inspect, crop and write map imagery stores."""

from __future__ import annotations

import argparse

from ciper_ros.cli.common import check_out_file, latlon, subcommands, write_rgb_image, zooms


def add_parser(subparsers) -> None:
    p_map = subparsers.add_parser('map', help='inspect and crop map imagery stores')
    sub = subcommands(p_map, 'map_command', 'MAP_COMMAND')

    p = sub.add_parser('info', help='bounds, zooms and tile counts of a map')
    p.add_argument('map', help='MBTiles file or XYZ tile folder')
    p.add_argument('--json', action='store_true', help='print machine-readable JSON')
    p.set_defaults(func=cmd_info)

    p = sub.add_parser('crop', help='write a north-up metric crop as an image')
    p.add_argument('map', help='MBTiles file or XYZ tile folder')
    p.add_argument('--center', type=latlon, required=True, help='crop centre LAT,LON (deg)')
    p.add_argument('--side-m', type=float, default=64.0, help='crop side in metres')
    p.add_argument('--side-px', type=int, default=256, help='crop side in pixels')
    p.add_argument('--zoom', type=int, default=None,
                   help='source zoom (default: coarsest zoom at least as fine as the crop)')
    p.add_argument('--fill-missing', action='store_true',
                   help='paint missing tiles black instead of failing')
    p.add_argument('--out', required=True, help='output image (.png or .jpg)')
    p.set_defaults(func=cmd_crop)

    p = sub.add_parser('pattern', help='write a metric test-grid map (MBTiles or XYZ)')
    p.add_argument('out', help='output: *.mbtiles file, or a folder for XYZ tiles')
    p.add_argument('--center', type=latlon, default=(48.137, 11.575),
                   help='centre LAT,LON (deg)')
    p.add_argument('--size-m', type=float, default=400.0, help='side of the square area (m)')
    p.add_argument('--zooms', type=zooms, default=[18, 19], help='zoom levels, e.g. 18,19')
    p.add_argument('--spacing-m', type=float, default=10.0, help='grid line spacing (m)')
    p.add_argument('--format', default='png', choices=['png', 'jpg'], help='tile format')
    p.add_argument('--overwrite', action='store_true', help='replace an existing file')
    p.set_defaults(func=cmd_pattern)


def cmd_info(args: argparse.Namespace) -> int:
    from ciper_ros.maps import open_store
    from ciper_ros.maps.open import store_summary
    from ciper_ros.util.jsonio import dumps_json

    with open_store(args.map) as store:
        info = store_summary(store, args.map)
        bounds = store.metadata.bounds
    if args.json:
        print(dumps_json(info, indent=2), end='')
        return 0
    print(f"{info['path']} ({info['type']}, {info['format']}, {info['tile_px']} px tiles)")
    print(f"  name:     {info['name']}")
    print(f'  bounds:   {bounds}')
    print(f"  zooms:    {info['minzoom']}..{info['maxzoom']}")
    print(f"  tiles:    {info['tile_count']}")
    for z, n in info['tiles_per_zoom'].items():
        print(f"    z{z:<2d} {n:>8d} tiles  "
              f"{info['m_per_px_at_center'][z]:.4f} m/px at the centre latitude")
    return 0


def cmd_crop(args: argparse.Namespace) -> int:
    from ciper_ros.maps import open_store

    out = check_out_file(args.out)
    with open_store(args.map) as store:
        crop = store.crop(args.center, args.side_m, args.side_px, zoom=args.zoom,
                          missing='fill' if args.fill_missing else 'error')
    write_rgb_image(out, crop.image_rgb)
    print(f'wrote {out}: {crop.side_px}x{crop.side_px} px, {crop.m_per_px:.4f} m/px, '
          f'from zoom {crop.zoom}')
    return 0


def cmd_pattern(args: argparse.Namespace) -> int:
    from ciper_ros.maps.pattern import write_pattern_map

    n = write_pattern_map(args.out, center_latlon_deg=args.center, size_m=args.size_m,
                          zooms=args.zooms, spacing_m=args.spacing_m, fmt=args.format,
                          overwrite=args.overwrite)
    print(f'wrote {args.out}: {n} new tiles, {args.size_m:g} m square at {args.center}, '
          f'zooms {args.zooms}, grid every {args.spacing_m:g} m')
    return 0
