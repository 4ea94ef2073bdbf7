"""The evaluations behind ``ciper eval`` on pairs: GT tile, gallery retrieval, baseline.

The chained evaluation through the runtime is :mod:`ciper_ros.experiments.localization_eval`.
"""

from __future__ import annotations

import math
import os

DEFAULT_TOP_K = 5                  # crops decoded per query in the gallery evaluation
DEFAULT_SPLIT = {'vigor': 'test', 'ford': 'test', 'kitti': 'test1'}


def evaluate_synthetic(model_path: str | os.PathLike, cities: list[str], *, n: int,
                       seed: int, style: str, heading: str, aerial_side_m: float,
                       top_k: int | None = None) -> dict:
    """Evaluate a checkpoint on ``n`` pairs from synthetic cities, sized like its inputs."""
    from ciper_ros.data.synthetic import PairTensors
    from ciper_ros.model.build import load_model
    from ciper_ros.synth.pairs import CitySource, PairConfig, SyntheticPairs
    from ciper_ros.train.evaluate import evaluate

    model = load_model(model_path)
    cfg = PairConfig.for_model(model.config, style=style, heading=heading,
                               aerial_side_m=aerial_side_m)
    sources = [CitySource.from_folder(c) for c in cities]
    data = PairTensors(SyntheticPairs(sources, cfg, length=n, seed=seed))
    prior = math.radians(cfg.heading_prior_deg) if cfg.heading == 'prior' else None
    result = evaluate(model, data, top_k=top_k or DEFAULT_TOP_K, yaw_prior_range_rad=prior)
    result['model'] = str(model_path)
    result['pairs'] = {'style': cfg.style, 'heading': cfg.heading, 'seed': seed}
    return result


def evaluate_dataset(model_path: str | os.PathLike, kind: str, root: str | os.PathLike,
                     options: dict | None = None, *, top_k: int | None = None) -> dict:
    """Evaluate a checkpoint on a whole VIGOR / KITTI / Ford split (``options``: its spec)."""
    from ciper_ros.data.build import build_dataset
    from ciper_ros.model.build import load_model
    from ciper_ros.train.evaluate import evaluate

    model = load_model(model_path)
    spec = {'kind': kind, 'root': str(root), **(options or {})}
    spec.setdefault('split', DEFAULT_SPLIT.get(kind, 'test'))
    data = build_dataset(spec, model.config)
    prior_deg = spec.get('rotation_range_deg', spec.get('heading_prior_deg', 10.0))
    result = evaluate(model, data, top_k=top_k or DEFAULT_TOP_K,
                      yaw_prior_range_rad=math.radians(prior_deg), progress=True)
    result['model'] = str(model_path)
    result['dataset'] = spec
    return result


def evaluate_geometric(cities: list[str], *, model_path: str | os.PathLike | None, n: int,
                       seed: int, style: str, heading: str, aerial_side_m: float) -> dict:
    """Evaluate the non-learned baseline on the pairs ``model_path`` gets (default ciper_t)."""
    from ciper_ros.baselines.geometric import evaluate_pairs
    from ciper_ros.model.build import load_checkpoint
    from ciper_ros.model.config import ModelConfig
    from ciper_ros.synth.pairs import CitySource, PairConfig, SyntheticPairs

    # sized like the model it is compared with (default: ciper_t's inputs)
    mc = ModelConfig.from_dict(load_checkpoint(model_path)['config']) if model_path else \
        ModelConfig()
    cfg = PairConfig.for_model(mc, style=style, heading=heading, aerial_side_m=aerial_side_m)
    pairs = SyntheticPairs([CitySource.from_folder(c) for c in cities], cfg, length=n,
                           seed=seed)
    prior = math.radians(cfg.heading_prior_deg) if cfg.heading == 'prior' else None
    return {'gt_tile': evaluate_pairs(pairs, ground_kind=cfg.ground,
                                      yaw_prior_range_rad=prior),
            'baseline': 'geometric (flat-ground BEV + NCC)',
            'pairs': {'style': cfg.style, 'heading': cfg.heading, 'seed': seed,
                      'ground': cfg.ground}}


def gallery_retrieval(model, model_config, pairs: dict, city: str | os.PathLike, *, n: int,
                      seed: int, batch_size: int = 16, progress: bool = False) -> dict:
    """Rank each query's own crop among ``n`` crops of one city (recall@k).

    The evaluator's gallery mode (:func:`ciper_ros.train.evaluate.evaluate` without a
    dataset gallery: the queries' own crops, one group per city) without its pose decodes:
    the same descriptors, similarities and :func:`~ciper_ros.metrics.retrieval.
    retrieval_metrics`. ``pairs``: the pair options (training's, a panorama's
    ``limited_fov_prob`` 0).
    """
    import numpy as np
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from ciper_ros.data.common import collate
    from ciper_ros.experiments.ablate import synthetic_eval_set
    from ciper_ros.metrics.retrieval import retrieval_metrics

    data, _ = synthetic_eval_set(model_config, pairs, [str(city)], n=n, seed=seed)
    model.eval()
    device = next(model.parameters()).device
    desc_g, desc_a = [], []
    with torch.no_grad():
        for batch in tqdm(DataLoader(data, batch_size=batch_size, collate_fn=collate),
                          desc='retrieval', disable=not progress):
            for out, enc, key in ((desc_g, model.encode_ground, 'ground'),
                                  (desc_a, model.encode_aerial, 'aerial')):
                d = enc(batch[key].to(device))['desc'].float()
                out.append(torch.nn.functional.normalize(d, dim=-1).cpu())
    sim = (torch.cat(desc_g) @ torch.cat(desc_a).T).numpy()          # (n, n) query x crop
    return retrieval_metrics(sim, np.arange(len(sim))) | {'gallery_size': int(len(sim)),
                                                          'city': str(city), 'seed': seed}
