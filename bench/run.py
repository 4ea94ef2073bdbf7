"""Run every benchmark and write one JSON file per benchmark into --out.

Usage: python bench/run.py --out bench/results [--only maps]
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
import platform
import sys
import time

BENCHMARKS = ['bench_maps', 'bench_synth', 'bench_model', 'bench_runtime', 'bench_retrieval',
              'bench_node', 'bench_tracker']


def machine() -> dict:
    import os

    import numpy as np
    return {'python': platform.python_version(), 'machine': platform.machine(),
            'processor': platform.processor() or 'unknown', 'cpu_count': os.cpu_count(),
            'numpy': np.__version__, 'time_utc': time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                                              time.gmtime())}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='bench/results', help='output folder for JSON files')
    parser.add_argument('--only', choices=BENCHMARKS + [b.removeprefix('bench_')
                                                        for b in BENCHMARKS])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in BENCHMARKS:
        if args.only and args.only not in (name, name.removeprefix('bench_')):
            continue
        print(f'== {name}')
        result = {'benchmark': name, 'machine': machine(),
                  **importlib.import_module(name).run()}
        path = out / f"{name.removeprefix('bench_')}.json"
        tmp = path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(result, indent=2) + '\n')
        tmp.replace(path)
        print(json.dumps(result, indent=2))
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
