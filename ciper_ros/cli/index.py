"""``ciper index build|info|merge``: the city-scale tile index."""

from __future__ import annotations

import argparse
import os

from ciper_ros.cli.common import area, check_out_dir, shard, subcommands

FAISS_KINDS = ['auto', 'flat', 'hnsw', 'ivf']


def add_parser(subparsers) -> None:
    p_idx = subparsers.add_parser('index', help='city-scale tile index: build, inspect, merge '
                                  'shards')
    sub = subcommands(p_idx, 'index_command', 'INDEX_COMMAND')

    p = sub.add_parser('build', help='descriptors of a grid of map crops + FAISS + SQLite '
                       '(resumable: run again after a kill)')
    p.add_argument('--map', required=True, help='MBTiles file or XYZ tile folder')
    p.add_argument('--model', required=True, help='checkpoint (.pt); its hash is recorded')
    p.add_argument('--area', type=area,
                   help='WEST,SOUTH,EAST,NORTH in degrees (default: the whole map)')
    p.add_argument('--stride-m', type=float, help='grid step (default: half the crop side)')
    p.add_argument('--crop-side-m', type=float,
                   help='crop side (default: what the model was trained on)')
    p.add_argument('--shard', type=shard, default=None, metavar='I/N',
                   help='build shard I of N (one per worker), then `ciper index merge`; '
                        'under torchrun each rank builds its own shard into OUT.shardIofN')
    p.add_argument('--faiss', choices=FAISS_KINDS, default='auto',
                   help='search structure: auto = exact below 100k tiles, HNSW above')
    p.add_argument('--batch', type=int, default=32, help='crops per forward pass')
    p.add_argument('--chunk-tiles', type=int, default=256,
                   help='tiles per resumable chunk (also the unit of sharding)')
    p.add_argument('--device', default='cpu', help="torch device, e.g. 'cuda'")
    p.add_argument('--out', required=True, help='index directory to create')
    p.set_defaults(func=cmd_build)

    p = sub.add_parser('info', help='what an index holds')
    p.add_argument('index', help='index directory')
    p.add_argument('--json', action='store_true', help='print index.json')
    p.set_defaults(func=cmd_info)

    p = sub.add_parser('merge', help='join the shards of one build into one index')
    p.add_argument('shards', nargs='+', help='shard directories')
    p.add_argument('--faiss', choices=FAISS_KINDS, default='auto')
    p.add_argument('--out', required=True, help='index directory to create')
    p.set_defaults(func=cmd_merge)


def _shard_and_out(args: argparse.Namespace) -> tuple[tuple[int, int], str]:
    """``--shard`` and ``--out``, or under torchrun one shard per rank into OUT.shardIofN."""
    if args.shard is not None:
        return args.shard, args.out
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    return (rank, world), (f'{args.out}.shard{rank}of{world}' if world > 1 else args.out)


def cmd_build(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.index import build_index, read_info

    shard_, out_dir = _shard_and_out(args)
    check_out_dir(out_dir)                 # a file named --out fails now, not after the build
    out = build_index(map_path=args.map, model_path=args.model, out_dir=out_dir,
                      area=args.area, stride_m=args.stride_m, crop_side_m=args.crop_side_m,
                      shard=shard_, faiss_kind=args.faiss, batch=args.batch,
                      chunk_tiles=args.chunk_tiles, device=args.device)
    info = read_info(out)
    print(f"index {out}: {info['tiles_in_this_dir']} of {info['n_tiles']} tiles "
          f"({info['crop_side_m']:g} m crops every {info['stride_m']:g} m), FAISS "
          f"{info['faiss'] or 'none (a shard: merge the shards)'}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.index import require_valid_index
    from ciper_ros.util.jsonio import dumps_json

    info = require_valid_index(args.index)      # missing or corrupt data files: exit 2
    if args.json:
        print(dumps_json(info), end='')
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


def cmd_merge(args: argparse.Namespace) -> int:
    from ciper_ros.runtime.index import merge_shards, read_info

    out = merge_shards(args.shards, check_out_dir(args.out), faiss_kind=args.faiss)
    info = read_info(out)
    print(f"index {out}: {info['n_tiles']} tiles from {len(args.shards)} shards, FAISS "
          f"{info['faiss']}")
    return 0
