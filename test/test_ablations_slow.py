"""The ablation harness end to end on a tiny budget (make test-all)."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from ciper_ros.synth.folder import write_city_folder
from ciper_ros.synth.world import CityConfig

from tinymodel import TINY_MODEL

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_ablation_script_runs_every_variant(tmp_path):
    for seed in (1000, 0):
        write_city_folder(tmp_path / str(seed), CityConfig(seed=seed, size_m=200.0),
                          zooms=(19,), progress=False)
    cfg = tmp_path / 'tiny.yaml'
    cfg.write_text(yaml.safe_dump({
        'model_overrides': TINY_MODEL, 'pairs': {'aerial_side_m': 40.0}, 'batch_size': 4,
        'max_steps': 4, 'warmup_steps': 1, 'log_every': 1, 'ckpt_every': 2, 'val_every': 4,
        'val_samples': 4, 'num_workers': 0}))
    out = tmp_path / 'ablation'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'ablation.py'), '--config',
                        str(cfg), '--train-cities', str(tmp_path / '1000'), '--test-city',
                        str(tmp_path / '0'), '--budget-minutes', '5', '--n', '6', '--out',
                        str(out)], capture_output=True, text=True, timeout=1200,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / 'ablations.json').read_text())
    assert set(result['variants']) == {'joint', 'cascade', 'single_query', 'free_queries',
                                       'shared_encoders', 'geometric'}
    for name, v in result['variants'].items():
        assert v['eval']['gt_tile']['count'] == 6, name
        if name != 'geometric':
            assert 0.0 <= v['eval']['retrieval']['recall@1'] <= 1.0
    assert result['variants']['cascade']['steps'] == [4, 4]
    # every learned variant trained on a non-zero loss; the cascade's parts on their own
    retrieval, pose = result['variants']['cascade']['last_losses']
    assert retrieval['loss_retrieval'] > 0
    assert retrieval['loss'] == pytest.approx(retrieval['loss_retrieval'])
    assert pose['loss'] == pytest.approx(sum(v for k, v in pose.items()
                                             if k not in ('loss', 'loss_retrieval')))
    for name, v in result['variants'].items():
        if name != 'geometric':
            assert all(part['loss'] > 0 for part in v['last_losses']), name
    table = (out / 'ablations.md').read_text()
    assert '| metric | joint | single_query |' in table or '| joint |' in table


def test_v2_suite_runs_every_variant(tmp_path):
    from tinymodel import TINY_FINE_MODEL

    for seed in (1000, 0):
        write_city_folder(tmp_path / str(seed), CityConfig(seed=seed, size_m=200.0),
                          zooms=(19,), progress=False)
    cfg = tmp_path / 'tiny_v2.yaml'
    cfg.write_text(yaml.safe_dump({
        'model': 'ciper_t2', 'model_overrides': TINY_FINE_MODEL,
        'pairs': {'aerial_side_m': 40.0, 'negative_crops': True, 'far_negatives': True,
                  'far_negative_range_m': [30.0, 60.0]},
        'retrieval_loss': 'infonce', 'retrieval_queue': 16, 'null_images': 1,
        'init_trunk': 'imagenet', 'batch_size': 4, 'max_steps': 3, 'warmup_steps': 1,
        'log_every': 1, 'ckpt_every': 3, 'val_every': 3, 'val_samples': 4,
        'num_workers': 0}))
    out = tmp_path / 'ablation_v2'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'ablation.py'), '--suite', 'v2',
                        '--config', str(cfg), '--train-cities', str(tmp_path / '1000'),
                        '--test-city', str(tmp_path / '0'), '--budget-minutes', '5', '--n',
                        '6', '--no-geometric', '--out', str(out)], capture_output=True,
                       text=True, timeout=1800, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / 'ablations.json').read_text())
    assert result['suite'] == 'v2'
    assert set(result['variants']) == {'v2', 'v1', 'random_trunk', 'nearest_labels',
                                       'no_refine_loss', 'tokens_triplet', 'cascade',
                                       'v2_seed1', 'v1_seed1', 'no_rerank'}
    for name, v in result['variants'].items():
        assert v['eval']['gt_tile']['count'] == 6, name
        assert all(part['loss'] > 0 for part in v['last_losses']), name
    assert result['variants']['no_rerank']['from'] == 'v2'
    # the v1 variant really is v1 (anchored queries) and the v2 ones fine
    assert 'loss_anchor' in result['variants']['v1']['last_losses'][0]
    assert 'loss_volume' in result['variants']['v2']['last_losses'][0]
    nr = result['variants']['no_refine_loss']['last_losses'][0]
    assert nr['loss'] == pytest.approx(sum(v for k, v in nr.items()
                                           if k not in ('loss', 'loss_refine')), rel=1e-4)
