"""Trainer: losses fall on synthetic pairs; a killed run resumes exactly."""

import json
import math
from pathlib import Path

import pytest
import torch

from ciper_ros.synth.folder import write_city_folder
from ciper_ros.synth.world import CityConfig
from ciper_ros.train.schedule import get_lr
from ciper_ros.train.trainer import load_config, TrainConfig, Trainer

from tinymodel import TINY_MODEL


@pytest.fixture(scope='module')
def city(tmp_path_factory):
    d = tmp_path_factory.mktemp('city')
    write_city_folder(d, CityConfig(seed=1001, size_m=250.0), zooms=(19,), progress=False)
    return d


def config(city, out, **kw) -> TrainConfig:
    base = {'out_dir': str(out), 'model_overrides': dict(TINY_MODEL), 'cities': [str(city)],
            'pairs': {'aerial_side_m': 40.0}, 'batch_size': 4, 'max_steps': 6,
            'warmup_steps': 2, 'lr': 1e-3, 'log_every': 1, 'ckpt_every': 2, 'val_every': 1000}
    base.update(kw)
    return TrainConfig.from_dict(base)


def test_resume_after_a_kill_matches_an_uninterrupted_run(city, tmp_path):
    full = Trainer(config(city, tmp_path / 'full'))
    full.run(progress=False)
    log_full = [json.loads(ln) for ln in (tmp_path / 'full' / 'metrics.jsonl').open()]
    killed = Trainer(config(city, tmp_path / 'resumed'))
    killed.run(stop_after=4, progress=False)          # "killed" after the step-4 checkpoint
    assert killed.step == 4
    resumed = Trainer(config(city, tmp_path / 'resumed'))
    record = resumed.run(progress=False)
    assert record['resumed'] and resumed.step == 6
    log_res = [json.loads(ln) for ln in (tmp_path / 'resumed' / 'metrics.jsonl').open()]
    by_step = {r['step']: r['loss'] for r in log_res if 'loss' in r}
    for r in log_full:
        if 'loss' in r:
            assert by_step[r['step']] == pytest.approx(r['loss'], rel=1e-5, abs=1e-6)
    a = torch.load(tmp_path / 'full' / 'last.pt', weights_only=True)['model']
    b = torch.load(tmp_path / 'resumed' / 'last.pt', weights_only=True)['model']
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_loss_falls_and_validation_runs(city, tmp_path):
    cfg = config(city, tmp_path / 'run', max_steps=30, batch_size=6, val_cities=[str(city)],
                 val_every=30, val_samples=12, ckpt_every=30)
    t = Trainer(cfg)
    record = t.run(progress=False)
    log = [json.loads(ln) for ln in (tmp_path / 'run' / 'metrics.jsonl').open()]
    losses = [r['loss'] for r in log if 'loss' in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert 'val/recall@1' in record and 0.0 <= record['val/recall@1'] <= 1.0
    assert record['val/position_error_m_median'] >= 0.0


def test_training_from_pre_rendered_shards(city, tmp_path):
    from ciper_ros.model.build import build_model
    from ciper_ros.synth.pairs import CitySource, PairConfig, write_shards

    pair_cfg = PairConfig.for_model(build_model('ciper_t', **TINY_MODEL).config,
                                    aerial_side_m=40.0)
    shards = write_shards(tmp_path / 'bank', [CitySource.from_folder(city)], pair_cfg,
                          n_renders=6, shard_size=4, progress=False)
    cfg = config(city, tmp_path / 'run', cities=[], shards=str(shards), max_steps=4,
                 batch_size=4)
    t = Trainer(cfg)
    # 16 pairs from 6 renders: consecutive items are different renders (in-batch negatives)
    bank = t.train_set.pairs
    assert len(bank) >= 16 and bank.pairs_per_render == 3
    items = [t.train_set[i] for i in range(4)]
    assert len({float(it['ground'].sum()) for it in items}) == 4
    record = t.run(progress=False)
    assert t.step == 4 and math.isfinite(record['loss'])


def test_config_loading_and_overrides(tmp_path):
    p = tmp_path / 'c.yaml'
    p.write_text('batch_size: 3\nmodel_overrides: {dim: 64}\n')
    cfg = load_config(p, ['lr=0.002', 'model_overrides.depth=2', 'cities=[a, b]'])
    assert cfg.batch_size == 3 and cfg.lr == 0.002 and cfg.cities == ['a', 'b']
    assert cfg.model_overrides == {'dim': 64, 'depth': 2}
    with pytest.raises(ValueError, match='unknown training config keys'):
        load_config(None, ['bogus=1'])
    with pytest.raises(ValueError, match='not KEY=VALUE'):
        load_config(None, ['lr'])


def test_schedule_warms_up_then_decays():
    lrs = [get_lr(s, base_lr=1.0, warmup_steps=10, max_steps=100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] < 0.05


def test_ciper_train_cli(city, tmp_path):
    import os
    from pathlib import Path
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / 'tiny.yaml'
    cfg.write_text(yaml.safe_dump({'model_overrides': TINY_MODEL, 'cities': [str(city)],
                                   'pairs': {'aerial_side_m': 40.0}, 'batch_size': 2,
                                   'warmup_steps': 1, 'log_every': 1}))
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, '-m', 'ciper_ros.cli', 'train', '--config', str(cfg),
                        f'out_dir={tmp_path / "out"}', 'max_steps=2', 'ckpt_every=1'],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(root)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / 'out' / 'last.pt').is_file()
    from ciper_ros.model.build import load_model
    model = load_model(tmp_path / 'out' / 'last.pt')
    assert model.config.dim == 32
    bad = subprocess.run([sys.executable, '-m', 'ciper_ros.cli', 'train', 'bogus=1'],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    assert bad.returncode == 2 and 'unknown training config keys' in bad.stderr


def test_two_process_ddp_with_gloo(city, tmp_path):
    """Run torchrun with 2 CPU processes (gloo): both ranks train, rank 0 logs and saves."""
    import os
    from pathlib import Path
    import socket
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / 'ddp.yaml'
    cfg.write_text(yaml.safe_dump({'model_overrides': TINY_MODEL, 'cities': [str(city)],
                                   'pairs': {'aerial_side_m': 40.0}, 'batch_size': 2,
                                   'warmup_steps': 1, 'log_every': 1, 'max_steps': 3,
                                   'ckpt_every': 3, 'out_dir': str(tmp_path / 'out')}))
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS='1',
               GLOO_SOCKET_IFNAME='lo', MASTER_ADDR='127.0.0.1')
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                        '--nnodes=1', f'--master_port={port}', '--master_addr=127.0.0.1',
                        '-m', 'ciper_ros.cli', 'train', '--config', str(cfg)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(ln) for ln in (tmp_path / 'out' / 'metrics.jsonl').open()]
    assert [x['step'] for x in log] == [1, 2, 3]     # one writer: rank 0
    blob = torch.load(tmp_path / 'out' / 'last.pt', weights_only=True)
    assert blob['step'] == 3
    assert all(torch.isfinite(v).all() for v in blob['model'].values() if v.is_floating_point())


def test_training_on_a_kitti_tree_with_fixed_test_shifts(tmp_path):
    from datafixtures import build_kitti

    root = tmp_path / 'kitti'
    build_kitti(root)
    spec = {'kind': 'kitti', 'root': str(root), 'side_px': 256}
    cfg = TrainConfig.from_dict({
        'out_dir': str(tmp_path / 'run'), 'model_overrides': dict(TINY_MODEL),
        'dataset': {**spec, 'split': 'train'}, 'val_dataset': {**spec, 'split': 'test1'},
        'batch_size': 2, 'max_steps': 4, 'warmup_steps': 1, 'log_every': 1, 'val_every': 2,
        'ckpt_every': 2})
    trainer = Trainer(cfg)
    assert math.isclose(trainer.prior_range_rad, math.radians(10.0))
    record = trainer.run(progress=False)
    assert record['step'] == 4 and math.isfinite(record['loss'])
    lines = [json.loads(x) for x in (tmp_path / 'run' / 'metrics.jsonl').read_text().split('\n')
             if x]
    val = [x for x in lines if 'val/position_error_m_median' in x]
    assert len(val) == 2 and val[0]['val/count'] == 3


def test_query_mode_ablation_end_to_end(city, tmp_path):
    import yaml

    from ciper_ros.cli import main

    cfg = tmp_path / 'ablate.yaml'
    cfg.write_text(yaml.safe_dump({'model_overrides': TINY_MODEL, 'cities': [str(city)],
                                   'val_cities': [str(city)], 'val_samples': 8,
                                   'pairs': {'aerial_side_m': 40.0}, 'batch_size': 4,
                                   'max_steps': 4, 'warmup_steps': 1, 'val_every': 2,
                                   'log_every': 2, 'ckpt_every': 2}))
    out = tmp_path / 'abl'
    assert main(['ablate', 'query-modes', '--config', str(cfg), 'lr=0.001',
                 '--test-city', str(city), '--n', '6', '--out', str(out)]) == 0
    result = json.loads((out / 'query_modes.json').read_text())
    assert set(result['modes']) == {'anchored', 'free'}
    for mode, r in result['modes'].items():
        assert r['steps'] == 4 and [c['step'] for c in r['curve']] == [2, 4]
        assert r['eval']['count'] == 6
        blob = torch.load(out / mode / 'last.pt', weights_only=True)
        assert blob['config']['query_mode'] == mode
    assert (out / 'query_modes.png').stat().st_size > 10_000
    assert '| metric | anchored | free | tile centre |' in (out / 'query_modes.md').read_text()


def test_speed_up_arithmetic():
    from ciper_ros.experiments.ablate import speed_up

    def curve(steps, errs):
        return [{'step': s, 'elapsed_s': 2.0 * s, 'position_error_m_median': e}
                for s, e in zip(steps, errs, strict=True)]

    su = speed_up({'anchored': curve([100, 200, 300], [5.0, 2.0, 1.0]),
                   'free': curve([100, 200, 300, 400], [9.0, 8.0, 6.0, 4.0])})
    assert su['reached'] and su['fast_steps'] == 200 and su['steps_ratio'] == 2.0
    assert su['seconds_ratio'] == 2.0 and not su['lower_bound']
    su = speed_up({'anchored': curve([100], [9.0]), 'free': curve([100], [4.0])})
    assert su == {'target': 4.0, 'metric': 'position_error_m_median', 'slow_steps': 100,
                  'reached': False}


def test_tensorboard_scalars_when_installed(city, tmp_path):
    pytest.importorskip('tensorboard')      # optional package: not in this venv
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(config(city, tmp_path / 'run', max_steps=2)).run(progress=False)
    acc = EventAccumulator(str(tmp_path / 'run' / 'tb'))
    acc.Reload()
    assert 'loss' in acc.Tags()['scalars']


def test_negative_crops_train_the_confidence_down(city, tmp_path):
    cfg = config(city, tmp_path / 'neg', max_steps=3, batch_size=3,
                 pairs={'aerial_side_m': 40.0, 'negative_crops': True})
    t = Trainer(cfg)
    batch = next(iter(t._batches()))
    assert batch['aerial_negative'].shape == batch['aerial'].shape
    out, losses = t._forward(batch)
    assert out['neg_logits'].shape == out['pred_logits'].shape
    assert losses['loss_negative'] > 0
    t.run(progress=False)
    log = [json.loads(ln) for ln in (tmp_path / 'neg' / 'metrics.jsonl').open()]
    assert all('loss_negative' in r for r in log if 'loss' in r)
    # without negatives in the data there is no such loss (older configs train as before)
    _, plain = Trainer(config(city, tmp_path / 'plain'))._forward(batch | {
        'aerial_negative': None})
    assert 'loss_negative' not in plain


def test_a_partial_loss_weights_override_keeps_the_other_losses():
    # the ablation's cascade models set one weight to 0; the others must stay on (a partial
    # dict once replaced the defaults, leaving the retrieval model with no loss at all)
    w = load_config(None, ['cities=[c]', 'loss_weights.loss_conf=0']).loss_weights
    assert w['loss_conf'] == 0 and w['loss_retrieval'] == 1.0 and w['loss_xy'] == 1.0
    with pytest.raises(ValueError, match='unknown loss_weights'):
        load_config(None, ['cities=[c]', 'loss_weights.loss_retreival=0'])


def test_a_run_killed_between_checkpoints_resumes_clean(city, tmp_path):
    """No duplicate log rows for the steps redone, no temp file a killed write left."""
    import os
    import tempfile

    out = tmp_path / 'run'
    Trainer(config(city, out)).run(stop_after=2, progress=False)      # checkpoint at step 2
    at_step_2 = (out / 'last.pt').read_bytes()
    Trainer(config(city, out)).run(stop_after=1, progress=False)      # step 3 logged
    # the kill: after step 3 was logged, while its checkpoint was being written (atomic_path's
    # temp name beside the target), and in the middle of the next log line
    (out / 'last.pt').write_bytes(at_step_2)
    fd, stale = tempfile.mkstemp(dir=out, prefix='.last.pt.', suffix='.tmp')
    os.write(fd, at_step_2[:1000])
    os.close(fd)
    with open(out / 'metrics.jsonl', 'a') as f:
        f.write('{"step": 4, "lr": 0.0')
    (out / 'notes.tmp').write_text('not ours')
    logged = [json.loads(ln) for ln in (out / 'metrics.jsonl').read_text().splitlines()[:-1]]
    assert [r['step'] for r in logged] == [1, 2, 3]
    resumed = Trainer(config(city, out))
    record = resumed.run(progress=False)
    assert record['resumed'] and resumed.step == 6
    assert not Path(stale).exists() and (out / 'notes.tmp').exists()
    assert list(out.glob('.*.tmp')) == []
    log = [json.loads(ln) for ln in (out / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log] == [1, 2, 3, 4, 5, 6]
    # step 3 taken again from the step-2 checkpoint: the row kept is the same step's loss
    assert log[2]['loss'] == pytest.approx(logged[2]['loss'], rel=1e-5, abs=1e-6)


def test_resuming_the_shipped_weights_only_model_is_a_user_error(city, tmp_path, repo_root):
    import shutil

    from ciper_ros.util.errors import UserError

    out = tmp_path / 'run'
    out.mkdir()
    shutil.copy(repo_root / 'models' / 'ciper_t_synthetic.pt', out / 'last.pt')
    with pytest.raises(UserError) as e:
        Trainer(config(city, out, model_overrides={})).run(progress=False)
    msg = str(e.value)
    assert msg.startswith(f'{out / "last.pt"} is a weights-only checkpoint (no optimizer')
    assert 'shipped float16 model' in msg and 'another out_dir' in msg


def test_resuming_a_corrupt_or_foreign_checkpoint_is_a_user_error(city, tmp_path):
    from ciper_ros.util.errors import CorruptFileError, UserError

    out = tmp_path / 'run'
    Trainer(config(city, out)).run(stop_after=1, progress=False)
    data = (out / 'last.pt').read_bytes()
    # another model's checkpoint: the config keys that differ are named
    with pytest.raises(UserError, match=r"another model than this run builds \(config "
                                        r"differs in \['desc_dim'\]\)"):
        Trainer(config(city, out, model_overrides={**TINY_MODEL, 'desc_dim': 24})).run(
            progress=False)
    (out / 'last.pt').write_bytes(data[:len(data) // 3])                  # a copy cut short
    with pytest.raises(CorruptFileError, match=f'corrupt checkpoint {out / "last.pt"}'):
        Trainer(config(city, out)).run(progress=False)


def test_gradient_clipping_bounds_the_norm_the_optimizer_steps_with(city, tmp_path):
    clip = 1e-3
    t = Trainer(config(city, tmp_path / 'run', max_steps=3, grad_clip=clip))
    seen = []

    def grad_norm_at_step(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g['params']
                 if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    t.optimizer.register_step_pre_hook(grad_norm_at_step)
    t.run(progress=False)
    log = [json.loads(ln) for ln in (tmp_path / 'run' / 'metrics.jsonl').open()]
    assert len(seen) == 3 and len(log) == 3
    for after, rec in zip(seen, log, strict=True):
        assert rec['grad_norm'] > 100 * clip          # the logged norm is before clipping
        assert after <= clip * (1 + 1e-4)             # the step sees the clipped gradient


def test_the_time_budget_stops_a_run_and_counts_across_resumes(city, tmp_path):
    budget_min = 0.005                                # 0.3 s of training
    out = tmp_path / 'run'
    t = Trainer(config(city, out, max_steps=10_000, max_minutes=budget_min, ckpt_every=10_000))
    record = t.run(progress=False)
    assert record['stopped'] == 'time budget of 0.005 min'
    assert 1 <= t.step < 10_000 and t.elapsed_s >= 60 * budget_min
    blob = torch.load(out / 'last.pt', weights_only=True)
    assert blob['step'] == t.step and blob['elapsed_s'] == t.elapsed_s
    again = Trainer(config(city, out, max_steps=10_000, max_minutes=budget_min,
                           ckpt_every=10_000))
    record = again.run(progress=False)                # the budget is already spent
    assert record['resumed'] and record['stopped'] and again.step == t.step


def test_init_checkpoint_starts_from_its_weights_and_refuses_another_architecture(city,
                                                                                  tmp_path):
    """Fine-tuning: step 0 holds the checkpoint's weights; a rig-cut run trains from them."""
    from ciper_ros.model.build import load_checkpoint
    from ciper_ros.util.errors import UserError

    Trainer(config(city, tmp_path / 'a', max_steps=2)).run(progress=False)
    src = tmp_path / 'a' / 'last.pt'
    t = Trainer(config(city, tmp_path / 'b', max_steps=2, init_checkpoint=str(src),
                       pairs={'aerial_side_m': 40.0, 'rig_fov_prob': 1.0}))
    theirs = load_checkpoint(src)['model']
    ours = t.model.state_dict()
    assert all(torch.equal(ours[k].float(), theirs[k].float()) for k in theirs)
    t.run(progress=False)
    assert t.step == 2
    other = dict(TINY_MODEL, depth=TINY_MODEL.get('depth', 1) + 1)
    with pytest.raises(UserError, match='another configuration'):
        Trainer(config(city, tmp_path / 'c', model_overrides=other, init_checkpoint=str(src)))
