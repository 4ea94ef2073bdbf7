"""The default model's ablations in one harness: same data, same metrics, same CPU budget.

Variants (each trained from the same config, seed and pairs under the same wall-clock
budget; the cascade's two models split it):

* ``joint``: CIPER (geometry-anchored queries, separate encoders, every loss);
* ``cascade``: a retrieval-only model (retrieval loss only) followed by a pose-only model
  (pose losses only, trained on ground-truth crops): retrieval from the first, pose from
  the second;
* ``single_query`` / ``free_queries``: the pose decoder's query variants (``joint`` is the
  anchored one);
* ``shared_encoders``: one encoder for both views;
* ``geometric``: the non-learned flat-ground BEV + NCC baseline (no training).

The ``v2`` suite (issue 14; config ``config/train/default_model_v2.yaml``) measures each
change of the fine model under the same rule: ``v2`` (everything), ``v1`` (the first
model's architecture and losses on the same data), ``random_trunk`` (no ImageNet
weights), ``nearest_labels`` (the hardest nearest cell instead of Gaussian soft labels),
``no_refine_loss`` (no L1 on the soft-argmax), ``tokens_triplet`` (v1's token descriptor
and in-batch soft-margin triplet instead of GeM + InfoNCE with the queue), the cascade
(retrieval-only then pose-only models) and ``no_rerank`` (the ``v2`` weights, chained
mode decoding only the top retrieved crop: what re-ranking by the volume adds); ``v2`` and
``v1`` again with seed 1 for the headline rows.

Every variant is scored by :func:`ciper_ros.train.evaluate.evaluate` (the geometric one
by the same pose metrics) on the same held-out pairs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ciper_ros.experiments.ablate import synthetic_eval_set, train_runs
from ciper_ros.util.atomic import atomic_write_text

POSE_LOSSES = ('loss_conf', 'loss_xy', 'loss_yaw', 'loss_anchor')
VARIANTS: dict[str, list[str]] = {
    'joint': [],
    'cascade_retrieval': [f'loss_weights.{k}=0' for k in POSE_LOSSES],
    'cascade_pose': ['loss_weights.loss_retrieval=0'],
    'single_query': ['model_overrides.query_mode=single'],
    'free_queries': ['model_overrides.query_mode=free'],
    'shared_encoders': ['model_overrides.share_encoders=true'],
}
HALF_BUDGET = ('cascade_retrieval', 'cascade_pose')
V2_POSE_LOSSES = POSE_LOSSES + ('loss_volume', 'loss_refine', 'loss_match', 'loss_negative')
V1_ON_V2 = ['model=ciper_t', 'model_overrides.query_mode=anchored', 'retrieval_loss=triplet',
            'retrieval_queue=0', 'init_trunk=""', 'null_images=0']
V2_VARIANTS: dict[str, list[str]] = {
    'v2': [],
    'v1': V1_ON_V2,
    'random_trunk': ['init_trunk=""'],
    'nearest_labels': ['volume_target=nearest'],
    'no_refine_loss': ['loss_weights.loss_refine=0'],
    'tokens_triplet': ['model_overrides.descriptor=tokens', 'retrieval_loss=triplet',
                       'retrieval_queue=0'],
    'cascade_retrieval': [f'loss_weights.{k}=0' for k in V2_POSE_LOSSES],
    'cascade_pose': ['loss_weights.loss_retrieval=0'],
    'v2_seed1': ['seed=1'],
    'v1_seed1': V1_ON_V2 + ['seed=1'],
}
# variants evaluated from another variant's weights: (source, evaluate() options)
V2_EVAL_VARIANTS = {'no_rerank': ('v2', {'top_k': 1})}
SUITES = {'v1': (VARIANTS, {}), 'v2': (V2_VARIANTS, V2_EVAL_VARIANTS)}


class CascadeModel(torch.nn.Module):
    """Retrieval descriptors from one model, pose from another: the evaluator's interface."""

    def __init__(self, retrieval: torch.nn.Module, pose: torch.nn.Module) -> None:
        super().__init__()
        self.retrieval, self.pose = retrieval, pose
        self.config = pose.config

    def encode_ground(self, x: torch.Tensor) -> dict:
        return {**self.pose.encode_ground(x), 'desc': self.retrieval.encode_ground(x)['desc']}

    def encode_aerial(self, x: torch.Tensor, **kw) -> dict:
        return {**self.pose.encode_aerial(x, **kw),
                'desc': self.retrieval.encode_aerial(x, polar=False)['desc']}

    def decode(self, *args, **kwargs) -> dict:
        return self.pose.decode(*args, **kwargs)


def run_suite(config: str | None, overrides: list[str], out_dir: str | Path, *,
              budget_minutes: float, test_cities: list[str], n: int = 150, seed: int = 12345,
              variants: list[str] | None = None, geometric: bool = True,
              suite: str = 'v1') -> dict:
    """Train every variant under the budget, evaluate all on the same pairs; JSON result.

    ``suite``: 'v1' (the first model's ablations) or 'v2' (issue 14's changes).
    """
    from ciper_ros.baselines.geometric import evaluate_pairs
    from ciper_ros.model.build import load_checkpoint, model_from_checkpoint
    from ciper_ros.model.config import ModelConfig
    from ciper_ros.train.evaluate import evaluate

    out = Path(out_dir)
    table, eval_variants = SUITES[suite]
    names = [n for n in (variants or list(table)) if n in table]
    extra_evals = {k: v for k, v in eval_variants.items()
                   if (variants is None or k in variants) and v[0] in names}
    share = {name: budget_minutes / (2 if name in HALF_BUDGET else 1) for name in names}
    runs = train_runs(config, overrides, out, {
        name: table[name] + [f'max_minutes={share[name]}'] for name in names})
    models, blobs = {}, {}
    for name, run in runs.items():
        blobs[name] = load_checkpoint(run / 'last.pt')
        models[name] = model_from_checkpoint(blobs[name])
    if 'cascade_retrieval' in models and 'cascade_pose' in models:
        models['cascade'] = CascadeModel(models.pop('cascade_retrieval'),
                                         models.pop('cascade_pose'))
    first = blobs[names[0]]
    pairs = first.get('train_config', {}).get('pairs', {})
    data, pcfg = synthetic_eval_set(ModelConfig.from_dict(first['config']), pairs, test_cities,
                                    n=n, seed=seed)
    prior = math.radians(pcfg.heading_prior_deg) if pcfg.heading == 'prior' else None
    result: dict = {'suite': suite, 'budget_minutes': budget_minutes,
                    'test_cities': list(test_cities), 'n': n, 'seed': seed, 'variants': {}}
    for name, model in models.items():
        parts = ['cascade_retrieval', 'cascade_pose'] if name == 'cascade' else [name]
        result['variants'][name] = {
            'eval': evaluate(model, data, yaw_prior_range_rad=prior),
            'steps': [int(blobs[p]['step']) for p in parts],
            'last_losses': [_last_losses(runs[p]) for p in parts],
            'train_seconds': sum(float(blobs[p].get('elapsed_s', 0.0)) for p in parts)}
    for name, (source, options) in extra_evals.items():
        result['variants'][name] = {
            'eval': evaluate(models[source], data, yaw_prior_range_rad=prior, **options),
            'steps': [int(blobs[source]['step'])], 'from': source, 'options': options,
            'last_losses': [_last_losses(runs[source])],
            'train_seconds': float(blobs[source].get('elapsed_s', 0.0))}
    if geometric:
        result['variants']['geometric'] = {
            'eval': {'gt_tile': evaluate_pairs(data.pairs, ground_kind=pcfg.ground,
                                               yaw_prior_range_rad=prior, progress=False)},
            'steps': [], 'train_seconds': 0.0}
    atomic_write_text(out / 'ablations.json', json.dumps(result, indent=1) + '\n')
    atomic_write_text(out / 'ablations.md', markdown(result))
    return result


def _last_losses(run: Path) -> dict:
    """Read the last logged total and named losses of a run (total 0: nothing trained)."""
    last: dict = {}
    log = run / 'metrics.jsonl'
    for line in log.read_text().splitlines() if log.is_file() else []:
        rec = json.loads(line)
        if 'loss' in rec:
            last = {k: v for k, v in rec.items() if k == 'loss' or k.startswith('loss_')}
    return last


def markdown(result: dict) -> str:
    rows = [('position error median, GT crop (m)', 'gt_tile', 'position_error_m_median', 2),
            ('position within 1 m, GT crop', 'gt_tile', 'position_within_1m', -1),
            ('heading error median, GT crop (deg)', 'gt_tile', 'heading_error_deg_median',
             1),
            ('retrieval recall@1', 'retrieval', 'recall@1', -1),
            ('chained position error median (m)', 'chained', 'position_error_m_median', 2)]
    names = list(result['variants'])
    lines = ['| metric | ' + ' | '.join(names) + ' |', '| --- |' + ' --- |' * len(names)]
    for label, section, key, digits in rows:
        cells = []
        for n in names:
            v = result['variants'][n]['eval'].get(section, {}).get(key)
            cells.append('-' if v is None else (f'{100 * v:.1f} %' if digits < 0
                                                else f'{v:.{digits}f}'))
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    lines.append('| training (min) | ' + ' | '.join(
        f"{result['variants'][n]['train_seconds'] / 60:.1f}" for n in names) + ' |')
    lines.append('| training steps | ' + ' | '.join(
        ' + '.join(str(s) for s in result['variants'][n]['steps']) or '-' for n in names)
        + ' |')
    return '\n'.join(lines) + '\n'
