"""Cross-view retrieval metrics, as the field's evaluation code computes them.

Rank of a query: the number of gallery items scored strictly above its positive (0: the
positive is first). Ties do not push the positive down, and VIGOR's semi-positives count
as negatives: only the positive tile is a hit, and a semi-positive scored above it pushes
it down. That is what the released evaluation code of VIGOR (Zhu et al., CVPR 2021:
``validate_top`` in ``train_SAFA.py`` of github.com/Jeff-Zilence/VIGOR, ``np.sum(dist <
gt_dist)`` over the whole gallery), TransGeo (Zhu et al., CVPR 2022: ``accuracy`` in
``train.py`` of github.com/Jeff-Zilence/TransGeo2022) and Sample4Geo (Deuser et al., ICCV
2023: ``calculate_scores`` in ``sample4geo/evaluate/vigor.py`` of
github.com/Skyy93/Sample4Geo) do.

Keys (fractions in [0, 1]; G is the query's gallery size):

* ``recall@K``: rank < K, for K in ``ks``.
* ``recall@1%_transgeo``: rank < G // 100 (TransGeo's ``M // 100``, Sample4Geo's
  ``R // 100``); left out when a gallery has fewer than 100 items (the top 0 is empty).
* ``recall@1%_vigor``: rank < int(0.01 G) + 1 (VIGOR's ``top1_percent``, in the same
  floating-point arithmetic). It always takes one item more than the TransGeo variant
  (G = 250: top 3 vs top 2; G = 100: top 2 vs top 1). The ceil(0.01 G) this module used
  to report as VIGOR's equals VIGOR's only when G is not a multiple of 100; at G = 100,
  200, ... it is the TransGeo value.
* ``recall@1%_transgeo_k``, ``recall@1%_vigor_k``: the K each used (the mean over queries
  when their galleries differ in size).
* with semi-positives, ``hit_rate``: VIGOR's hit rate as its paper defines it, "the top-1
  retrieved reference image covers the query image (including the ground-truth)": the
  top-1 is the positive or one of its semi-positives.
* with semi-positives, ``hit_rate_vigor_code``: the hit rate as VIGOR's and Sample4Geo's
  code compute it: no item other than a semi-positive is scored above the positive. It
  is lower when a semi-positive is first but a negative sits between it and the positive
  (the paper's definition counts that query as a hit).

A similarity of ``-inf`` marks an item outside the query's gallery (crops of another city
when each query is ranked within its own): such items never rank above the positive and
do not count in G.
"""

from __future__ import annotations

import numpy as np


def retrieval_metrics(similarity: np.ndarray, positives: np.ndarray, *,
                      semi_positives: np.ndarray | None = None,
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    """Recall@K, both recall@1% variants and (with semi-positives) the hit rates.

    :param similarity: (Q, G) query x gallery scores (higher is better; ``-inf``: not in
        the query's gallery)
    :param positives: (Q,) index of each query's positive in the gallery
    :param semi_positives: optional (Q, G) bool, True where a gallery item is a
        semi-positive of the query (VIGOR: the camera is inside the tile, off its centre
        part); negatives for every recall, hits for the hit rates
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f'similarity must be (Q, G), got shape {sim.shape}')
    Q, G = sim.shape
    pos = np.asarray(positives, dtype=np.int64)
    if pos.shape != (Q,) or pos.min(initial=0) < 0 or pos.max(initial=0) >= G:
        raise ValueError(f'positives must be (Q,) = ({Q},) indices into a gallery of {G}, '
                         f'got shape {pos.shape}')
    rows = np.arange(Q)
    pos_score = sim[rows, pos]
    if not np.isfinite(pos_score).all():
        raise ValueError(f'{int((~np.isfinite(pos_score)).sum())} queries have a non-finite '
                         'score for their own positive')
    above = sim > pos_score[:, None]                    # (Q, G) ranked above the positive
    rank = above.sum(axis=1)                            # 0 = the positive is first
    gallery = np.isfinite(sim).sum(axis=1)              # (Q,) each query's gallery size
    out = {f'recall@{k}': float(np.mean(rank < k)) for k in ks}
    if Q and gallery.min() >= 100:
        k_transgeo = gallery // 100
        out['recall@1%_transgeo'] = float(np.mean(rank < k_transgeo))
        out['recall@1%_transgeo_k'] = _k(k_transgeo)
    k_vigor = (0.01 * gallery).astype(np.int64) + 1
    out['recall@1%_vigor'] = float(np.mean(rank < k_vigor))
    out['recall@1%_vigor_k'] = _k(k_vigor)
    if semi_positives is not None:
        semi = np.asarray(semi_positives, dtype=bool)
        if semi.shape != (Q, G):
            raise ValueError(f'semi_positives must be (Q, G) = ({Q}, {G}), got {semi.shape}')
        semi = semi & (np.arange(G)[None, :] != pos[:, None])   # the positive is not semi
        top1 = sim.argmax(axis=1)
        out['hit_rate'] = float(np.mean((top1 == pos) | semi[rows, top1]))
        out['hit_rate_vigor_code'] = float(np.mean(~(above & ~semi).any(axis=1)))
    return out


def _k(k: np.ndarray) -> int | float:
    """Return the K every query used, or their mean when the galleries differ in size."""
    return int(k[0]) if len(k) and (k == k[0]).all() else float(np.mean(k))


def descriptor_stats(desc: np.ndarray) -> dict:
    """Collapse diagnostics of descriptors (N, E): effective rank and mean pairwise cosine.

    Effective rank (Roy and Vetterli 2007): exp of the entropy of the normalised singular
    values of the centred, L2-normalised descriptors, between 1 (every descriptor on one
    line) and min(N, E). A collapsed descriptor has a handful; the mean pairwise cosine of
    a collapsed one is near 1.
    """
    d = np.asarray(desc, np.float64)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    n = len(d)
    cos = d @ d.T
    mean_cos = float((cos.sum() - np.trace(cos)) / max(n * (n - 1), 1))
    s = np.linalg.svd(d - d.mean(0, keepdims=True), compute_uv=False)
    p = s / max(float(s.sum()), 1e-12)
    p = p[p > 0]
    return {'effective_rank': float(np.exp(-(p * np.log(p)).sum())),
            'mean_pairwise_cosine': mean_cos}
