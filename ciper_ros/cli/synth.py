"""``ciper synth city|drive|pairs|preview``: synthetic cities, drives and training pairs."""

from __future__ import annotations

import argparse

from ciper_ros.cli.common import (
    check_out_dir,
    check_out_file,
    latlon,
    RIG_PRESETS,
    subcommands,
    write_rgb_image,
    zooms,
)

# the names of ciper_ros.synth.appearance.PRESETS and its HELD_OUT_PRESET, spelled out so
# that --help imports no numpy (test/test_appearance_presets.py keeps them equal)
APPEARANCE_PRESETS = ('default', 'summer_noon', 'autumn', 'winter_overcast', 'evening_low_sun',
                      'provider_b', 'dry_south')
HELD_OUT_APPEARANCE = 'dry_south'
# the names of ciper_ros.synth.gnss.GNSS_PROFILES, likewise (test/test_synth_gnss.py)
GNSS_PROFILE_NAMES = ('white', 'open-sky', 'urban', 'outages')


def add_parser(subparsers) -> None:
    p_syn = subparsers.add_parser('synth', help='synthetic cities, drives and training pairs')
    sub = subcommands(p_syn, 'synth_command', 'SYNTH_COMMAND')

    p = sub.add_parser('city', help='generate a city: world (city.npz) + aerial MBTiles')
    p.add_argument('--seed', type=int, default=0, help='city seed (test 0-499, val 500-999, '
                   'train 1000+)')
    p.add_argument('--size-m', type=float, default=600.0, help='side of the square city (m)')
    p.add_argument('--res-m', type=float, default=0.2, help='world raster resolution (m/px)')
    p.add_argument('--datum', type=latlon, default=(48.137, 11.575),
                   help='LAT,LON of the city centre (map ENU origin)')
    p.add_argument('--zooms', type=zooms, default=[19, 20], help='aerial zoom levels')
    p.add_argument('--appearance', choices=APPEARANCE_PRESETS, default='default',
                   metavar='NAME', help='appearance preset (palettes, season, sun, road wear, '
                   f'aerial provider): {", ".join(APPEARANCE_PRESETS)}; {HELD_OUT_APPEARANCE} '
                   'is held out from training (default: %(default)s)')
    p.add_argument('--out', required=True, help='output folder')
    p.set_defaults(func=cmd_city)

    p = sub.add_parser('drive', help='simulate a drive and write it as a rosbag2')
    p.add_argument('--city', required=True, help='folder made by `ciper synth city`')
    p.add_argument('--out', required=True, help='output bag folder')
    p.add_argument('--duration-s', type=float, default=60.0, help='drive duration (s)')
    p.add_argument('--seed', type=int, default=0, help='drive seed (route, noise)')
    p.add_argument('--width', type=int, default=320, help='camera image width (px)')
    p.add_argument('--height', type=int, default=240, help='camera image height (px)')
    p.add_argument('--hfov-deg', type=float, default=90.0, help='camera horizontal FoV')
    p.add_argument('--panorama', action='store_true', help='also record a 360 panorama')
    p.add_argument('--rig', choices=[r for r in RIG_PRESETS if r != 'forward'],
                   help='also record a camera rig (each camera on /rig/<name>/image_raw/'
                        'compressed + camera_info, mounts on /tf_static; --width x --height)')
    p.add_argument('--no-raw', action='store_true', help='compressed images only')
    p.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap')
    p.add_argument('--gnss-profile', choices=GNSS_PROFILE_NAMES, default='white',
                   help='GNSS error model: white (noise only), open-sky (~1 m, slow bias), '
                   'urban (biased, 5-30 m multipath excursions, under-stated covariance), '
                   'outages (30-120 s dropouts); see docs/gnss_profiles.md')
    p.add_argument('--gnss-rate-hz', type=float, help='GNSS fix rate (Hz; profile: 5)')
    p.add_argument('--gnss-sigma-m', type=float, help="GNSS white noise (m; the profile's)")
    p.add_argument('--gnss-bias-sigma-m', type=float, help="GNSS bias std (m; the profile's)")
    p.add_argument('--gnss-dropout-rate-hz', type=float,
                   help="how often GNSS dropouts start (1/s; the profile's)")
    p.add_argument('--gnss-outage', type=float, nargs=2, action='append', default=[],
                   metavar=('START_S', 'DURATION_S'),
                   help='a GNSS outage at a given time (repeatable)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    p.set_defaults(func=cmd_drive)

    p = sub.add_parser('pairs', help='pre-render training pairs into shards (resumable)')
    p.add_argument('--city', action='append', required=True, help='city folder (repeatable)')
    p.add_argument('--out', required=True, help='shard folder')
    p.add_argument('--n', type=int, default=1024, help='number of renders')
    p.add_argument('--shard-size', type=int, default=128)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--style', choices=['vigor', 'kitti'], default='vigor')
    p.add_argument('--ground', choices=['panorama', 'pinhole'], default='panorama')
    p.add_argument('--heading', choices=['unknown', 'prior'], default='unknown')
    p.add_argument('--aerial-side-m', type=float, default=64.0)
    p.add_argument('--aerial-side-px', type=int, default=128)
    p.set_defaults(func=cmd_pairs)

    p = sub.add_parser('preview', help='PNG sheet: aerial crop with pose | pinhole | panorama')
    p.add_argument('--city', required=True, help='folder made by `ciper synth city`')
    p.add_argument('--out', required=True, help='output PNG')
    p.add_argument('--n', type=int, default=4, help='number of rows')
    p.add_argument('--seed', type=int, default=0)
    p.set_defaults(func=cmd_preview)


def cmd_city(args: argparse.Namespace) -> int:
    from ciper_ros.synth.folder import MAP_FILE, write_city_folder
    from ciper_ros.synth.world import CityConfig

    out = check_out_dir(args.out)
    cfg = CityConfig(seed=args.seed, size_m=args.size_m, res_m=args.res_m,
                     lat0_deg=args.datum[0], lon0_deg=args.datum[1],
                     appearance=args.appearance)
    world, t = write_city_folder(out, cfg, zooms=tuple(args.zooms))
    print(f'city seed {cfg.seed} ({cfg.appearance}): {cfg.size_m:g} m square at {args.datum}, '
          f'{world.n_buildings} buildings, {len(world.trees.height_m)} trees, '
          f'{len(world.cars.yaw_rad)} parked cars, {len(world.roads.edges)} road edges '
          f"(generated in {t['generate_s']:.1f} s)")
    print(f"aerial map: {out / MAP_FILE} zooms {args.zooms} ({t['aerial_s']:.1f} s)")
    return 0


def cmd_drive(args: argparse.Namespace) -> int:
    import json

    from ciper_ros.bag.drive import write_drive_bag
    from ciper_ros.synth.folder import city_paths
    from ciper_ros.synth.gnss import gnss_profile
    from ciper_ros.synth.recording import DriveConfig
    from ciper_ros.synth.world import World

    world_path, _ = city_paths(args.city)
    cfg = DriveConfig(duration_s=args.duration_s, seed=args.seed, panorama=args.panorama,
                      rig=args.rig or '',
                      raw_images=not args.no_raw, storage=args.storage,
                      image_width=args.width, image_height=args.height, hfov_deg=args.hfov_deg,
                      gnss=gnss_profile(args.gnss_profile, rate_hz=args.gnss_rate_hz,
                                        sigma_m=args.gnss_sigma_m,
                                        bias_sigma_m=args.gnss_bias_sigma_m,
                                        dropout_rate_hz=args.gnss_dropout_rate_hz,
                                        scheduled_outages_s=tuple(
                                            (float(a), float(b)) for a, b in args.gnss_outage)
                                        or None))
    out = write_drive_bag(World.load(world_path), args.out, cfg, overwrite=args.overwrite)
    info = json.loads((out / 'ciper_drive.json').read_text())
    print(f"wrote {out}: {info['duration_s']:.1f} s, {info['distance_m']:.0f} m driven, "
          f'GNSS {cfg.gnss.name}, {cfg.storage}')
    return 0


def cmd_pairs(args: argparse.Namespace) -> int:
    from ciper_ros.synth.pairs import CitySource, PairConfig, write_shards

    out = check_out_dir(args.out)
    cfg = PairConfig(style=args.style, ground=args.ground, heading=args.heading,
                     aerial_side_m=args.aerial_side_m, aerial_side_px=args.aerial_side_px)
    sources = [CitySource.from_folder(c) for c in args.city]
    out = write_shards(out, sources, cfg, n_renders=args.n, shard_size=args.shard_size,
                       seed=args.seed)
    print(f'wrote {args.n} renders to {out}')
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from ciper_ros.synth.preview import city_preview_sheet

    out = check_out_file(args.out)
    write_rgb_image(out, city_preview_sheet(args.city, n_rows=args.n, seed=args.seed))
    print(f'wrote {out}: {args.n} rows of aerial crop (60 m, camera pose and 90 deg FoV drawn) '
          f'| forward pinhole 90 deg | 360 panorama centred on the heading')
    return 0
