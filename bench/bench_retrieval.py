"""Retrieval scaling: query latency and recall@10 of the index's FAISS choice vs exact search.

Synthetic random-but-clustered unit descriptors (128-D, as ciper_t's) for 10^3 .. 10^6
tiles; queries are noisy copies of database items, searched one at a time as the runtime
does. The baseline in the same run is exact inner-product search (IndexFlatIP). Set
CIPER_BENCH_MAX_TILES to stop earlier (the 10^6 HNSW build takes minutes on 2 cores).
"""

from __future__ import annotations

import os
import time

import numpy as np

DIM = 128
QUERIES = 200
SIZES = (1_000, 10_000, 100_000, 1_000_000)


def _data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(max(10, n // 100), DIM)).astype(np.float32)
    x = centres[rng.integers(len(centres), size=n)]
    x += 0.7 * rng.normal(size=(n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(n, QUERIES, replace=False)]
    q = q + 0.1 * rng.normal(size=q.shape).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q


def _per_query_ms(index, q: np.ndarray) -> tuple[float, np.ndarray]:
    ids = []
    t0 = time.perf_counter()
    for i in range(len(q)):
        ids.append(index.search(q[i:i + 1], 10)[1][0])
    return (time.perf_counter() - t0) / len(q) * 1e3, np.stack(ids)


def run() -> dict:
    import faiss

    from ciper_ros.runtime.index import FLAT_MAX_TILES, make_faiss

    cap = int(os.environ.get('CIPER_BENCH_MAX_TILES', SIZES[-1]))
    rng = np.random.default_rng(0)
    out = {'dim': DIM, 'queries': QUERIES, 'faiss': faiss.__version__,
           'auto_rule': f'flat below {FLAT_MAX_TILES} tiles, HNSW (M 32, efSearch 256) above',
           'sizes': {}}
    for n in SIZES:
        if n > cap:
            break
        x, q = _data(n, rng)
        exact = faiss.IndexFlatIP(DIM)
        exact.add(x)
        t_exact, ids_exact = _per_query_ms(exact, q)
        row = {'exact_ms_per_query': round(t_exact, 3)}
        kinds = ['hnsw'] if n >= 10_000 else []
        for kind in kinds:
            t0 = time.perf_counter()
            index, _ = make_faiss(x, kind)
            build_s = time.perf_counter() - t0
            t_q, ids = _per_query_ms(index, q)
            recall = float(np.mean([len(set(a) & set(e)) / 10
                                    for a, e in zip(ids, ids_exact, strict=True)]))
            row[kind] = {'build_s': round(build_s, 1), 'ms_per_query': round(t_q, 3),
                         'recall_at_10_vs_exact': round(recall, 4),
                         'speedup_vs_exact': round(t_exact / t_q, 1)}
        row['auto_choice'] = make_faiss(x[:1], 'auto', flat_max=FLAT_MAX_TILES)[1] \
            if n < FLAT_MAX_TILES else 'hnsw'
        out['sizes'][str(n)] = row
        print(n, row, flush=True)
    big = out['sizes'].get(str(SIZES[-1]), {}).get('hnsw')
    if big:
        out['meets_target_1e6'] = big['ms_per_query'] < 5.0 and \
            big['recall_at_10_vs_exact'] >= 0.99
    return out
