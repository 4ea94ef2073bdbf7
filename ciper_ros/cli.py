"""The ``ciper`` command: one entry point, one subcommand per job.

Heavy modules are imported inside the handlers, so ``ciper --help`` stays fast and a missing
optional package only affects the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import sys

from ciper_ros import __version__
from ciper_ros.util.errors import CiperError


class CliError(CiperError):
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


# ---------------------------------------------------------------------------- synth
def cmd_synth_city(args: argparse.Namespace) -> int:
    from ciper_ros.synth.folder import MAP_FILE, write_city_folder
    from ciper_ros.synth.world import CityConfig

    out = Path(args.out)
    cfg = CityConfig(seed=args.seed, size_m=args.size_m, res_m=args.res_m,
                     lat0_deg=args.datum[0], lon0_deg=args.datum[1])
    world, t = write_city_folder(out, cfg, zooms=tuple(args.zooms))
    print(f'city seed {cfg.seed}: {cfg.size_m:g} m square at {args.datum}, '
          f'{world.n_buildings} buildings, {len(world.trees.height_m)} trees, '
          f'{len(world.cars.yaw_rad)} parked cars, {len(world.roads.edges)} road edges '
          f"(generated in {t['generate_s']:.1f} s)")
    print(f"aerial map: {out / MAP_FILE} zooms {args.zooms} ({t['aerial_s']:.1f} s)")
    return 0


def cmd_synth_drive(args: argparse.Namespace) -> int:
    from ciper_ros.bag.drive import write_drive_bag
    from ciper_ros.synth.drive import GnssConfig
    from ciper_ros.synth.folder import city_paths
    from ciper_ros.synth.recording import DriveConfig
    from ciper_ros.synth.world import World

    world_path, _ = city_paths(args.city)
    world = World.load(world_path)
    cfg = DriveConfig(duration_s=args.duration_s, seed=args.seed, panorama=args.panorama,
                      raw_images=not args.no_raw, storage=args.storage,
                      image_width=args.width, image_height=args.height, hfov_deg=args.hfov_deg,
                      gnss=GnssConfig(rate_hz=args.gnss_rate_hz, sigma_m=args.gnss_sigma_m,
                                      bias_sigma_m=args.gnss_bias_sigma_m,
                                      dropout_rate_hz=args.gnss_dropout_rate_hz))
    out = write_drive_bag(world, args.out, cfg, overwrite=args.overwrite)
    info = json.loads((out / 'ciper_drive.json').read_text())
    print(f"wrote {out}: {info['duration_s']:.1f} s, {info['distance_m']:.0f} m driven, "
          f"{cfg.storage}")
    return 0


def _pair_config(args: argparse.Namespace):
    from ciper_ros.synth.pairs import PairConfig

    return PairConfig(style=args.style, ground=args.ground, heading=args.heading,
                      aerial_side_m=args.aerial_side_m, aerial_side_px=args.aerial_side_px)


def cmd_synth_pairs(args: argparse.Namespace) -> int:
    from ciper_ros.synth.pairs import CitySource, write_shards

    sources = [CitySource.from_folder(c) for c in args.city]
    out = write_shards(args.out, sources, _pair_config(args), n_renders=args.n,
                       shard_size=args.shard_size, seed=args.seed)
    print(f'wrote {args.n} renders to {out}')
    return 0


def cmd_synth_preview(args: argparse.Namespace) -> int:
    import math

    import cv2
    import numpy as np

    from ciper_ros.geo.camera import PinholeCamera
    from ciper_ros.maps import open_store
    from ciper_ros.synth.folder import city_paths
    from ciper_ros.synth.pairs import sample_road_pose
    from ciper_ros.synth.preview import draw_pose
    from ciper_ros.synth.render import CameraPose, GroundRenderer
    from ciper_ros.synth.world import World

    world_path, map_path = city_paths(args.city)
    world = World.load(world_path)
    renderer = GroundRenderer(world, epoch=1)
    cam = PinholeCamera.from_hfov(320, 180, 90.0)
    rng = np.random.default_rng(args.seed)
    rows = []
    with open_store(map_path) as store:
        for _ in range(args.n):
            xy, yaw = sample_road_pose(world, rng, margin_m=60.0)
            pose = CameraPose(xy[0], xy[1], yaw)
            latlon = world.plane.latlon_from_xy_m(xy)[0]
            crop = store.crop((latlon[0], latlon[1]), 60.0, 180)
            aer = draw_pose(crop.image_rgb, np.zeros(2), yaw, crop.m_per_px,
                            fov_rad=math.radians(90))
            pin = renderer.pinhole(pose, cam)
            pano = renderer.panorama(pose, width=720, height=180)
            gap = np.full((180, 6, 3), 255, np.uint8)
            rows.append(np.concatenate([aer, gap, pin, gap, pano], axis=1))
            rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    sheet = np.concatenate(rows[:-1], axis=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f'wrote {out}: {args.n} rows of aerial crop (60 m, camera pose and 90 deg FoV drawn) '
          f'| forward pinhole 90 deg | 360 panorama centred on the heading')
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ciper_ros.train.trainer import load_config, Trainer

    cfg = load_config(args.config, args.overrides)
    trainer = Trainer(cfg)
    record = trainer.run()
    print(json.dumps({k: v for k, v in record.items() if not isinstance(v, dict)}, indent=1))
    print(f'checkpoint: {trainer.last_path}; log: {trainer.out / "metrics.jsonl"}')
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ciper_ros.data.synthetic import PairTensors
    from ciper_ros.metrics.pose import markdown_table
    from ciper_ros.model.build import load_model
    from ciper_ros.synth.pairs import CitySource, PairConfig, SyntheticPairs
    from ciper_ros.train.evaluate import evaluate

    if args.baseline:
        return _eval_geometric(args)
    if not args.model:
        raise CliError('give --model CHECKPOINT (or --baseline geometric)')
    if args.gnss_sigma_m is not None:
        return _eval_localization(args)
    model = load_model(args.model)
    mc = model.config
    if args.dataset:
        return _eval_dataset(args, model)
    if not args.city:
        raise CliError('give --city FOLDER (synthetic) or --dataset KIND --root FOLDER')
    cfg = PairConfig.for_model(mc, style=args.style, heading=args.heading,
                               aerial_side_m=args.aerial_side_m)
    sources = [CitySource.from_folder(c) for c in args.city]
    data = PairTensors(SyntheticPairs(sources, cfg, length=args.n, seed=args.seed))
    prior = math.radians(cfg.heading_prior_deg) if cfg.heading == 'prior' else None
    result = evaluate(model, data, top_k=args.top_k or 5, yaw_prior_range_rad=prior)
    result['model'] = str(args.model)
    result['pairs'] = {'style': cfg.style, 'heading': cfg.heading, 'seed': args.seed}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
    for name in ('retrieval', 'gt_tile', 'chained', 'baseline_tile_centre'):
        print(markdown_table(result[name], title=name))
    return 0


def _eval_localization(args: argparse.Namespace) -> int:
    """Chained through the runtime: GNSS-gated candidates, then pose (per frame)."""
    from ciper_ros.experiments.localization_eval import evaluate_localization

    if len(args.city) != 1 or not args.index:
        raise CliError('--gnss-sigma-m needs one --city and --index DIR (built if missing)')
    result = evaluate_localization(
        model=args.model, city=args.city[0], index_dir=args.index, n=args.n,
        prior_sigma_m=args.gnss_sigma_m, seed=args.seed, calibration=args.calibration,
        uncalibrated=args.uncalibrated, top_k=args.top_k, camera=args.camera,
        heading_prior_deg=args.heading_prior_deg if args.heading == 'prior'
        or args.camera == 'forward' else None)
    result['model'] = str(args.model)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f'{k:<{width}}  {v:.4g}' if isinstance(v, float) else f'{k:<{width}}  {v}')
    return 0


def _eval_geometric(args: argparse.Namespace) -> int:
    """Evaluate the non-learned baseline on the pairs `ciper eval` gives a model."""
    from ciper_ros.baselines.geometric import evaluate_pairs
    from ciper_ros.metrics.pose import markdown_table
    from ciper_ros.model.build import load_checkpoint, ModelConfig
    from ciper_ros.synth.pairs import CitySource, PairConfig, SyntheticPairs

    if not args.city:
        raise CliError('the geometric baseline runs on synthetic cities: give --city FOLDER')
    # sized like the model it is compared with (default: ciper_t's inputs)
    mc = load_checkpoint(args.model)['config'] if args.model else ModelConfig().to_dict()
    cfg = PairConfig.for_model(mc, style=args.style, heading=args.heading,
                               aerial_side_m=args.aerial_side_m)
    pairs = SyntheticPairs([CitySource.from_folder(c) for c in args.city], cfg, length=args.n,
                           seed=args.seed)
    prior = math.radians(cfg.heading_prior_deg) if cfg.heading == 'prior' else None
    result = {'gt_tile': evaluate_pairs(pairs, ground_kind=cfg.ground,
                                        yaw_prior_range_rad=prior),
              'baseline': 'geometric (flat-ground BEV + NCC)',
              'pairs': {'style': cfg.style, 'heading': cfg.heading, 'seed': args.seed,
                        'ground': cfg.ground}}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
    print(markdown_table(result['gt_tile'], title='gt_tile (geometric baseline)'))
    return 0


def _eval_dataset(args: argparse.Namespace, model) -> int:
    import yaml

    from ciper_ros.data.build import build_dataset
    from ciper_ros.metrics.pose import markdown_table
    from ciper_ros.train.evaluate import evaluate

    if not args.root:
        raise CliError('--dataset needs --root FOLDER')
    spec = {'kind': args.dataset, 'root': args.root}
    for item in args.options:
        if '=' not in item:
            raise CliError(f'--set {item!r} is not KEY=VALUE')
        key, value = item.split('=', 1)
        spec[key] = yaml.safe_load(value)
    spec.setdefault('split', 'test' if args.dataset in ('vigor', 'ford') else 'test1')
    data = build_dataset(spec, model.config)
    prior = spec.get('rotation_range_deg', spec.get('heading_prior_deg', 10.0))
    result = evaluate(model, data, top_k=args.top_k or 5,
                      yaw_prior_range_rad=math.radians(prior),
                      progress=True)
    result['model'] = str(args.model)
    result['dataset'] = spec
    if args.out:
        from ciper_ros.util.atomic import atomic_write_text

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(result, indent=2) + '\n')
    for name in ('retrieval', 'gt_tile', 'chained', 'baseline_tile_centre'):
        print(markdown_table(result[name], title=name))
    return 0


def cmd_ablate_query_modes(args: argparse.Namespace) -> int:
    from ciper_ros.train import ablate

    out = Path(args.out)
    runs = {m: out / m for m in ablate.MODES}
    if not args.eval_only:
        how = 'in parallel' if args.parallel else 'one after the other'
        print(f'training {", ".join(runs)} ({how}); logs in {out}/<mode>/train.log',
              flush=True)
        ablate.train_modes(args.config, args.overrides, out, parallel=args.parallel)
    for mode, run in runs.items():
        if not (run / 'last.pt').is_file():
            raise CliError(f'no checkpoint for {mode}: {run / "last.pt"} (train first)')
    result = ablate.compare(runs, test_cities=args.test_city, n=args.n, seed=args.seed)
    paths = ablate.write_report(result, out)
    print(paths['md'].read_text())
    print('wrote ' + ', '.join(str(p) for p in paths.values()))
    return 0


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split('/'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected I/N (e.g. 0/4), got {text!r}') from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f'shard {text}: need 0 <= I < N')
    return i, n


def cmd_index_build(args: argparse.Namespace) -> int:
    from ciper_ros.geo.bounds import LatLonBounds
    from ciper_ros.runtime.index import build_index, read_info

    area = LatLonBounds.from_string(args.area) if args.area else None
    if args.shard is None:         # under torchrun: one shard per rank
        world = int(os.environ.get('WORLD_SIZE', '1'))
        args.shard = (int(os.environ.get('RANK', '0')), world)
        if world > 1:
            args.out = f'{args.out}.shard{args.shard[0]}of{world}'
    out = build_index(map_path=args.map, model_path=args.model, out_dir=args.out, area=area,
                      stride_m=args.stride_m, crop_side_m=args.crop_side_m, shard=args.shard,
                      faiss_kind=args.faiss, batch=args.batch, chunk_tiles=args.chunk_tiles,
                      device=args.device)
    info = read_info(out)
    print(f"index {out}: {info['tiles_in_this_dir']} of {info['n_tiles']} tiles "
          f"({info['crop_side_m']:g} m crops every {info['stride_m']:g} m), FAISS "
          f"{info['faiss'] or 'none (a shard: merge the shards)'}")
    return 0


def cmd_index_info(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.index import read_info

    info = read_info(args.index)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    w, s, e, n = info['area']
    print(f'index:    {args.index}')
    print(f"tiles:    {info['tiles_in_this_dir']} of {info['n_tiles']} (shard "
          f"{info['shard'][0]}/{info['shard'][1]})")
    print(f"crops:    {info['crop_side_m']:g} m, {info['crop_px']} px, every "
          f"{info['stride_m']:g} m")
    print(f'area:     {s:.6f},{w:.6f} .. {n:.6f},{e:.6f}')
    print(f"model:    {info['model_name']} sha256 {info['model_sha256'][:16]}...")
    print(f"map:      {info['map_path']}")
    print(f"search:   FAISS {info['faiss']}, {info['desc_dim']}-D float16 descriptors")
    return 0


def cmd_index_merge(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.index import merge_shards, read_info

    out = merge_shards(args.shards, args.out, faiss_kind=args.faiss)
    info = read_info(out)
    print(f"index {out}: {info['n_tiles']} tiles from {len(args.shards)} shards, FAISS "
          f"{info['faiss']}")
    return 0


def _localizer_and_source(args: argparse.Namespace, *, calibration: str | None = None):
    """Build the Localizer of `ciper localize` / `calibrate`; (localizer, source, is_bag)."""
    from ciper_ros.runtime.assemble import open_localizer
    from ciper_ros.runtime.localizer import LocalizerConfig

    loc = open_localizer(index=args.index, model=args.model, map_path=args.map,
                         backend=args.backend, export_dir=args.export, calibration=calibration,
                         config=LocalizerConfig(top_k=args.top_k or LocalizerConfig.top_k))
    src = Path(args.images)
    if not src.exists():
        raise CliError(f'{src} does not exist')
    return loc, src, src.is_file() or (src / 'metadata.yaml').is_file()


def cmd_localize(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.frames import (
        bag_frames,
        folder_frames,
        localize_frames,
        summary,
        write_rows,
    )
    from ciper_ros.runtime.gnss import FixPolicy
    from ciper_ros.runtime.localizer import Prior

    loc, src, is_bag = _localizer_and_source(args, calibration=args.calibration)
    prior = None
    if args.prior:
        parts = [float(v) for v in args.prior.split(',')]
        if len(parts) not in (2, 3):
            raise CliError('--prior is LAT,LON or LAT,LON,SIGMA_M')
        prior = Prior(parts[0], parts[1], sigma_m=parts[2] if len(parts) == 3 else 10.0)
    if not is_bag and prior is None and not args.no_prior:
        raise CliError('an image folder needs --prior LAT,LON[,SIGMA_M] or --no-prior')
    policy = FixPolicy(**{k: v for k, v in (('max_prior_sigma_m', args.max_prior_sigma_m),
                                            ('max_fix_age_s', args.max_fix_age_s))
                          if v is not None})
    frames = bag_frames(src, args.image_topic, policy=policy) if is_bag else \
        folder_frames(src)
    rows = localize_frames(loc, frames, prior=prior, use_prior=not args.no_prior)
    write_rows(rows, args.out)
    print(json.dumps(summary(rows), indent=1))
    print(f'wrote {args.out} ({len(rows)} frames)')
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.frames import bag_frames, calibration_frames
    from ciper_ros.runtime.localizer import calibrate_covariance
    from ciper_ros.util.atomic import atomic_write_text

    loc, src, is_bag = _localizer_and_source(args)
    if not is_bag:
        raise CliError('calibration needs a bag with ground truth (ciper synth drive)')
    result = calibrate_covariance(loc, calibration_frames(bag_frames(src, args.image_topic)),
                                  statistic=args.statistic)
    result.update(model_sha256=loc.index.info['model_sha256'], top_k=loc.cfg.top_k)
    atomic_write_text(args.out, json.dumps(result, indent=1) + '\n')
    print(json.dumps(result, indent=1))
    print(f'wrote {args.out}: use it with ciper localize --calibration {args.out}')
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.export import export_onnx

    report = export_onnx(args.model, args.out, decoder_batch=args.decoder_batch)
    for name, g in report['graphs'].items():
        worst = max(g['relative_error'].values())
        print(f'{args.out}/{name}: inputs {g["inputs"]}; onnxruntime vs torch max relative '
              f'error {worst:.1e}')
    print(f'wrote {args.out}/export.json (opset {report["opset"]}, model '
          f'{report["model_sha256"][:12]})')
    return 0


def cmd_model_build(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.recipe import ModelRecipe, train

    recipe = ModelRecipe(work_dir=args.work_dir, train_config=args.config,
                         n_train_cities=args.cities, renders_per_city=args.renders_per_city,
                         overrides=args.overrides)
    state = train(recipe, minutes=args.minutes)
    print(f"step {state['step']} of {state['max_steps']} after {state['train_hours']:.2f} h "
          f"of training; checkpoint {state['checkpoint']}"
          + ('' if state['finished'] else ' (run the same command again to continue)'))
    if args.no_finalize:
        return 0
    return _finalize(recipe, args)


def _finalize(recipe, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ciper_ros.experiments.finalize import finalize, PROTOCOL

    protocol = replace(PROTOCOL, **{k: getattr(args, k) for k in (
        'frames', 'calibration_frames', 'pairs') if getattr(args, k) is not None})
    data = finalize(recipe, source=args.source, out_model=args.out_model, card=args.card,
                    protocol=protocol, notes=tuple(args.note))
    for r in data['targets']:
        print(f"{r['camera']:<9} {r['metric']:<26} {r['value']:9.3f}  target {r['how']} "
              f"{r['target']}  {'met' if r['met'] else 'not met'}")
    print(f"wrote {args.out_model} ({data['size_bytes'] / 1e6:.1f} MB, calibrated) and "
          f'{args.card} in {data["finalize_s"]:.0f} s')
    return 0


def cmd_model_finalize(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.recipe import ModelRecipe

    return _finalize(ModelRecipe(work_dir=args.work_dir), args)


def cmd_model_check(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.finalize import check

    res = check(model=args.model, card_json=args.card_json, city=args.city,
                index_dir=args.index)
    for cam, rows in res['cameras'].items():
        for r in rows:
            print(f"{cam:<9} {r['metric']:<26} card {r['card']:9.4f}  now {r['now']:9.4f}  "
                  f"{'ok' if r['ok'] else 'DIFFERS'}")
    print('the model card reproduces' if res['ok'] else 'the model card does NOT reproduce')
    return 0 if res['ok'] else 1


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
    p.add_argument('--note', action='append', default=[],
                   help="a line for the card's training history (repeatable)")


def cmd_model_snapshot(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.recipe import ModelRecipe, snapshot

    path = snapshot(ModelRecipe(work_dir=args.work_dir), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): commit it; a fresh clone's "
          '`make model` continues from it')
    return 0


def _node_overrides(items: list[str]) -> dict:
    """--param KEY=VALUE (YAML values, as ros2 -p) -> dict."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise CliError(f'--param expects KEY=VALUE, got {item!r}')
        out[key] = yaml.safe_load(value) if value else ''
    return out


def cmd_bag_replay(args: argparse.Namespace) -> int:
    from ciper_ros.bag.replay import replay

    try:
        res = replay(args.bag, rate=args.rate, topics=args.topic or None,
                     wait_for=args.wait_for or None, wait_timeout_s=args.wait_timeout_s,
                     clock=not args.no_clock)
    except (TimeoutError, ImportError) as e:
        raise CliError(str(e)) from None
    for topic, why in res['skipped'].items():
        print(f'skipped {topic}: {why}', file=sys.stderr)
    print(f"replayed {res['messages']} messages ({res['duration_s']:.1f} s of bag time) on "
          f"{len(res['topics'])} topics")
    return 0


def cmd_bag_eval(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.bag_eval import NodeRunError, offline_rows, online_rows
    from ciper_ros.experiments.report import write_report
    from ciper_ros.geo.enu import LocalTangentPlane
    from ciper_ros.maps.open import open_store
    from ciper_ros.ros.params import NodeParams, ParameterError
    from ciper_ros.runtime.index import read_info

    overrides = _node_overrides(args.param)
    try:
        params = NodeParams.from_dict({'index': args.index, 'model': args.model or '',
                                       **overrides})
    except ParameterError as e:
        raise CliError(str(e)) from None
    bag, out = Path(args.bag), Path(args.out)
    if not bag.exists():
        raise CliError(f'bag {bag} does not exist')
    info = read_info(Path(args.index))
    meta = {'bag': str(bag), 'index': args.index, 'model': args.model or 'shipped default',
            'mode': 'online' if args.online else 'offline', 'rate': args.rate,
            'model_sha256': info['model_sha256'], 'node_parameters': overrides}
    datum = _latlon(args.datum) if args.datum else None
    if args.online:
        out.mkdir(parents=True, exist_ok=True)
        try:
            rows, run = online_rows(bag, index=args.index, model=args.model,
                                    node_params=overrides, image_topic=args.image_topic,
                                    rate=args.rate, datum=datum, truth_topic=args.truth_topic,
                                    log_path=out / 'node.log')
        except NodeRunError as e:
            raise CliError(f'{e}: {out / "node.log"}') from None
        meta.update(run)
    else:
        from ciper_ros.runtime.assemble import open_localizer

        loc = open_localizer(**params.localizer_args())
        rows = offline_rows(loc, bag, params=params, image_topic=args.image_topic,
                            datum=datum, truth_topic=args.truth_topic)
    store = open_store(params.map or info['map_path'])
    m = write_report(out, rows, meta=meta, store=store,
                     plane=LocalTangentPlane(*info['datum_latlon_deg']), zoom=info['zoom'])
    print(_headline(m))
    print(f'report: {out / "report.md"} (plots, frames.csv, metrics.json)')
    return 0


def _headline(m: dict) -> str:
    def g(k, fmt='{:.2f}'):
        return fmt.format(m[k]) if k in m else '-'

    return (f"{m['localized']}/{m['frames']} frames localized; position error median "
            f"{g('error_m_median')} m, p95 {g('error_m_p95')} m (GNSS prior on the same frames: "
            f"{g('gnss_error_m_median')} m, p95 {g('gnss_error_m_p95')} m); heading median "
            f"{g('yaw_error_deg_median')} deg; latency median {g('latency_ms_median', '{:.0f}')}"
            f" ms, p95 {g('latency_ms_p95', '{:.0f}')} ms")


def cmd_demo(args: argparse.Namespace) -> int:
    from ciper_ros.experiments.demo import run_demo

    metrics = run_demo(args.out)
    if metrics['marker_error_px_max'] > 1.0:
        raise CliError(f"crop geolocation check failed: max marker error "
                       f"{metrics['marker_error_px_max']:.3f} px > 1 px")
    return 0


# ---------------------------------------------------------------------------- parser
def _localizer_args(p: argparse.ArgumentParser, *, images: str) -> None:
    """Arguments shared by `ciper localize` and `ciper calibrate`."""
    p.add_argument('--index', required=True, help='tile index directory (ciper index build)')
    p.add_argument('--model', help='the checkpoint the index was built with (default: the '
                   'shipped model)')
    p.add_argument('--images', required=True, help=images)
    p.add_argument('--backend', choices=['torch', 'onnxruntime', 'tensorrt'], default='torch')
    p.add_argument('--export', help='ONNX export directory (onnxruntime / tensorrt)')
    p.add_argument('--map', help='map store (default: the one the index was built from)')
    p.add_argument('--image-topic', help='bag image topic (default: the first of '
                   '/camera_pano/image_raw/compressed, /camera/image_raw/compressed, '
                   '/camera/image_raw)')
    p.add_argument('--top-k', type=int,
                   help="candidate tiles decoded per frame (default: the runtime's, 9)")


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

    p_syn = sub.add_parser('synth', help='synthetic cities, drives and training pairs')
    syn = p_syn.add_subparsers(dest='synth_command', metavar='SYNTH_COMMAND')
    syn.required = True
    p = syn.add_parser('city', help='generate a city: world (city.npz) + aerial MBTiles')
    p.add_argument('--seed', type=int, default=0, help='city seed (test 0-499, val 500-999, '
                   'train 1000+)')
    p.add_argument('--size-m', type=float, default=600.0, help='side of the square city (m)')
    p.add_argument('--res-m', type=float, default=0.2, help='world raster resolution (m/px)')
    p.add_argument('--datum', type=_latlon, default=(48.137, 11.575),
                   help='LAT,LON of the city centre (map ENU origin)')
    p.add_argument('--zooms', type=_zooms, default=[19, 20], help='aerial zoom levels')
    p.add_argument('--out', required=True, help='output folder')
    p.set_defaults(func=cmd_synth_city)

    p = syn.add_parser('drive', help='simulate a drive and write it as a rosbag2')
    p.add_argument('--city', required=True, help='folder made by `ciper synth city`')
    p.add_argument('--out', required=True, help='output bag folder')
    p.add_argument('--duration-s', type=float, default=60.0, help='drive duration (s)')
    p.add_argument('--seed', type=int, default=0, help='drive seed (route, noise)')
    p.add_argument('--width', type=int, default=320, help='camera image width (px)')
    p.add_argument('--height', type=int, default=240, help='camera image height (px)')
    p.add_argument('--hfov-deg', type=float, default=90.0, help='camera horizontal FoV')
    p.add_argument('--panorama', action='store_true', help='also record a 360 panorama')
    p.add_argument('--no-raw', action='store_true', help='compressed images only')
    p.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap')
    p.add_argument('--gnss-rate-hz', type=float, default=5.0, help='GNSS fix rate (Hz)')
    p.add_argument('--gnss-sigma-m', type=float, default=3.0, help='GNSS white noise (m)')
    p.add_argument('--gnss-bias-sigma-m', type=float, default=2.0, help='GNSS bias std (m)')
    p.add_argument('--gnss-dropout-rate-hz', type=float, default=0.01,
                   help='how often GNSS dropouts start (1/s)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    p.set_defaults(func=cmd_synth_drive)

    def pair_args(p):
        p.add_argument('--style', choices=['vigor', 'kitti'], default='vigor')
        p.add_argument('--ground', choices=['panorama', 'pinhole'], default='panorama')
        p.add_argument('--heading', choices=['unknown', 'prior'], default='unknown')
        p.add_argument('--aerial-side-m', type=float, default=64.0)
        p.add_argument('--aerial-side-px', type=int, default=128)

    p = syn.add_parser('pairs', help='pre-render training pairs into shards (resumable)')
    p.add_argument('--city', action='append', required=True, help='city folder (repeatable)')
    p.add_argument('--out', required=True, help='shard folder')
    p.add_argument('--n', type=int, default=1024, help='number of renders')
    p.add_argument('--shard-size', type=int, default=128)
    p.add_argument('--seed', type=int, default=0)
    pair_args(p)
    p.set_defaults(func=cmd_synth_pairs)

    p = syn.add_parser('preview', help='PNG sheet: aerial crop with pose | pinhole | panorama')
    p.add_argument('--city', required=True, help='folder made by `ciper synth city`')
    p.add_argument('--out', required=True, help='output PNG')
    p.add_argument('--n', type=int, default=4, help='number of rows')
    p.add_argument('--seed', type=int, default=0)
    p.set_defaults(func=cmd_synth_preview)

    p = sub.add_parser('train', help='train a CIPER model (resumes from out_dir/last.pt)')
    p.add_argument('--config', help='training YAML (e.g. config/train/synthetic_ciper_t.yaml)')
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                   help='override config values, e.g. lr=3e-4 model_overrides.depth=6')
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('eval', help='evaluate a checkpoint (GT tile and chained retrieval + '
                       'pose) on synthetic cities or a VIGOR / KITTI / Ford tree')
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
    p.add_argument('--camera', choices=['native', 'forward'], default='native',
                   help="with --gnss-sigma-m: the model's own input or a forward 90-degree "
                        'pinhole camera (512x288) with a heading prior')
    p.add_argument('--heading-prior-deg', type=float, default=10.0,
                   help='heading prior half-width (--heading prior or --camera forward)')
    p.add_argument('--out', help='write the metrics as JSON')
    p.set_defaults(func=cmd_eval)

    p_idx = sub.add_parser('index', help='city-scale tile index: build, inspect, merge shards')
    idx_sub = p_idx.add_subparsers(dest='index_command', metavar='INDEX_COMMAND')
    idx_sub.required = True
    p = idx_sub.add_parser('build', help='descriptors of a grid of map crops + FAISS + SQLite '
                           '(resumable: run again after a kill)')
    p.add_argument('--map', required=True, help='MBTiles file or XYZ tile folder')
    p.add_argument('--model', required=True, help='checkpoint (.pt); its hash is recorded')
    p.add_argument('--area', help='WEST,SOUTH,EAST,NORTH in degrees (default: the whole map)')
    p.add_argument('--stride-m', type=float, help='grid step (default: half the crop side)')
    p.add_argument('--crop-side-m', type=float,
                   help='crop side (default: what the model was trained on)')
    p.add_argument('--shard', type=_shard, default=None, metavar='I/N',
                   help='build shard I of N (one per worker), then `ciper index merge`; '
                        'under torchrun each rank builds its own shard into OUT.shardIofN')
    p.add_argument('--faiss', choices=['auto', 'flat', 'hnsw', 'ivf'], default='auto',
                   help='search structure: auto = exact below 100k tiles, HNSW above')
    p.add_argument('--batch', type=int, default=32, help='crops per forward pass')
    p.add_argument('--chunk-tiles', type=int, default=256,
                   help='tiles per resumable chunk (also the unit of sharding)')
    p.add_argument('--device', default='cpu', help="torch device, e.g. 'cuda'")
    p.add_argument('--out', required=True, help='index directory to create')
    p.set_defaults(func=cmd_index_build)
    p = idx_sub.add_parser('info', help='what an index holds')
    p.add_argument('index', help='index directory')
    p.add_argument('--json', action='store_true', help='print index.json')
    p.set_defaults(func=cmd_index_info)
    p = idx_sub.add_parser('merge', help='join the shards of one build into one index')
    p.add_argument('shards', nargs='+', help='shard directories')
    p.add_argument('--faiss', choices=['auto', 'flat', 'hnsw', 'ivf'], default='auto')
    p.add_argument('--out', required=True, help='index directory to create')
    p.set_defaults(func=cmd_index_merge)

    p = sub.add_parser('localize', help='localize the frames of an image folder or a rosbag2 '
                       'against a tile index; CSV or JSON out')
    _localizer_args(p, images='image folder or rosbag2 (folder or file)')
    p.add_argument('--prior', help='LAT,LON[,SIGMA_M] for every frame (folders; bags use '
                   'their GNSS fixes)')
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

    p = sub.add_parser('calibrate', help='covariance scale factors from a recorded drive with '
                       'ground truth (validation data)')
    _localizer_args(p, images='rosbag2 with ground truth (ciper synth drive)')
    p.add_argument('--statistic', choices=('p95', 'median'), default='p95',
                   help='fit the 95 %% ellipse to 95 %% of errors (p95, default) or the '
                        'median normalised error to the chi-square median')
    p.add_argument('--out', required=True, help='calibration JSON to write')
    p.set_defaults(func=cmd_calibrate)

    p_model = sub.add_parser('model', help='the default model recipe (make model)')
    model_sub = p_model.add_subparsers(dest='model_cmd', metavar='COMMAND')
    model_sub.required = True
    p = model_sub.add_parser('build', help='cities, render bank, training: each stage '
                             'resumable; run again to continue')
    p.add_argument('--work-dir', default='runs/default_model', help='everything goes here')
    p.add_argument('--config', default='config/train/default_model.yaml')
    p.add_argument('--cities', type=int, default=128, help='training cities (seeds 1000..)')
    p.add_argument('--renders-per-city', type=int, default=96)
    p.add_argument('--minutes', type=float, default=0.0,
                   help='wall-clock budget of this run (0: train to max_steps)')
    p.add_argument('--no-finalize', action='store_true',
                   help='train only (no calibration, evaluation, shipped model or card)')
    _finalize_args(p)
    p.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                   help='training config overrides, e.g. max_steps=100')
    p.set_defaults(func=cmd_model_build)

    p = model_sub.add_parser('finalize', help='calibrate on the validation city, evaluate on '
                             'the test city, write the shipped model and its card')
    p.add_argument('--work-dir', default='runs/default_model')
    _finalize_args(p)
    p.set_defaults(func=cmd_model_finalize)

    p = model_sub.add_parser('check', help="rerun the model card's chained evaluation and "
                             'compare (exit 1 when a metric is off by more than 5 %%)')
    p.add_argument('--model', default='models/ciper_t_synthetic.pt')
    p.add_argument('--card-json', default='models/model_card.json')
    p.add_argument('--city', help='the test city folder (default: regenerated from its seed)')
    p.add_argument('--index', help='tile index folder to use or build (default: temporary)')
    p.set_defaults(func=cmd_model_check)
    p = model_sub.add_parser('snapshot', help="write the run's progress (float16) to "
                             'models/progress/default_model.pt for the repository')
    p.add_argument('--work-dir', default='runs/default_model')
    p.add_argument('--out', help='default: models/progress/default_model.pt')
    p.set_defaults(func=cmd_model_snapshot)

    p = sub.add_parser('export', help='ONNX graphs (ground encoder, aerial encoder, pose '
                       'decoder), each checked against torch in onnxruntime')
    p.add_argument('--model', required=True, help='checkpoint (.pt)')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--decoder-batch', type=int, default=5,
                   help='candidates decoded per frame (static batch of the decoder graph)')
    p.set_defaults(func=cmd_export)

    p_abl = sub.add_parser('ablate', help='controlled comparisons of model variants')
    abl_sub = p_abl.add_subparsers(dest='ablate_command', metavar='ABLATION')
    abl_sub.required = True
    p = abl_sub.add_parser('query-modes', help='train free and anchored queries alike, then '
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

    p_bag = sub.add_parser('bag', help='replay a rosbag2 over DDS; evaluate the localizer on it')
    bag_sub = p_bag.add_subparsers(dest='bag_cmd', metavar='COMMAND')
    bag_sub.required = True
    p = bag_sub.add_parser('replay', help='publish a bag at bag time with /clock (like ros2 '
                           'bag play --clock)')
    p.add_argument('bag', help='rosbag2 folder (mcap or sqlite3)')
    p.add_argument('--rate', type=float, default=1.0, help='playback speed factor')
    p.add_argument('--topic', action='append', help='replay only this topic (repeatable)')
    p.add_argument('--wait-for', action='append', metavar='TOPIC',
                   help='start once TOPIC has a subscriber (repeatable)')
    p.add_argument('--wait-timeout-s', type=float, default=60.0)
    p.add_argument('--no-clock', action='store_true', help='do not publish /clock')
    p.set_defaults(func=cmd_bag_replay)

    p = bag_sub.add_parser('eval', help='localize a recorded drive (offline, or through the '
                           'live node with --online) and write a report')
    p.add_argument('bag', help='rosbag2 folder with images, GNSS and ground truth')
    p.add_argument('--index', required=True, help='tile index directory (ciper index build)')
    p.add_argument('--model', help='checkpoint the index was built with (default: shipped)')
    p.add_argument('--online', action='store_true',
                   help='run the real localize_node under use_sim_time and replay the bag to it')
    p.add_argument('--rate', type=float, default=1.0, help='replay speed (--online)')
    p.add_argument('--image-topic', help='image topic (default: the first of '
                   '/camera_pano/image_raw/compressed, /camera/image_raw/compressed, '
                   '/camera/image_raw)')
    p.add_argument('--truth-topic', help='ground truth (PoseStamped / Odometry in a local ENU '
                   'frame; default /ground_truth/pose)')
    p.add_argument('--datum', help='LAT,LON of the truth frame (default: ciper_drive.json)')
    p.add_argument('--param', action='append', default=[], metavar='KEY=VALUE',
                   help='a node parameter (repeatable), e.g. top_k=3')
    p.add_argument('--out', default='out/bag_eval', help='report folder')
    p.set_defaults(func=cmd_bag_eval)

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
