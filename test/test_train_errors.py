"""Training configs and checkpoints a user gets wrong: one UserError naming the mistake."""

import os
from pathlib import Path
import subprocess
import sys

import pytest

from ciper_ros.model.build import build_model, load_checkpoint, save_checkpoint
from ciper_ros.train.trainer import load_config, TrainConfig
from ciper_ros.util.errors import CorruptFileError, UserError

from tinymodel import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    p = tmp_path / 'train.yaml'
    p.write_text(text)
    return p


@pytest.mark.parametrize('text, message', [
    ('lr: "abc"\n', "'lr' must be a number, got str 'abc'"),
    ('lr: 1e-4\n', 'YAML reads 1e-4 as a string'),      # PyYAML needs 1.0e-4
    ('batch_size: [1]\n', "'batch_size' must be an integer, got list [1]"),
    ('batch_size: 2.5\n', "'batch_size' must be an integer"),
    ('amp: 1\n', "'amp' must be true or false"),
    ('cities: cities/0\n', "'cities' must be a list, got str"),
    ('pairs: 64\n', "'pairs' must be a mapping"),
    ('pairs: {aerial_side_m: 40.0, bogus: 1}\n', "unknown pairs config keys: ['bogus']"),
    ('pairs: {aerial_side_m: forty}\n', "pairs config key 'aerial_side_m' must be a number"),
    ('model_overrides: {dim: [32]}\n', "model config key 'dim' must be an integer"),
    ('model_overrides: {ground_size: [32]}\n', "'ground_size' must be a list of 2"),
    ('model_overrides: {bogus: 1}\n', "unknown model config keys: ['bogus']"),
    ('loss_weights: {loss_xy: big}\n', 'loss_weights must be numbers'),
    ('- lr: 0.001\n- batch_size: 2\n', 'must be a mapping of key: value, got list'),
    ('just a string\n', 'must be a mapping of key: value, got str'),
    ('model: ciper_xl\n',
     "model must be one of ['ciper_s', 'ciper_t', 'ciper_t2'], got 'ciper_xl'"),
    ('batch_size: 0\n', 'batch_size must be >= 1, got 0'),
    ('max_steps: -5\n', 'max_steps must be >= 1, got -5'),
    ('accum_steps: 0\n', 'accum_steps must be >= 1'),
    ('ckpt_every: 0\n', 'ckpt_every must be >= 1'),
    ('val_samples: 0\n', 'val_samples must be >= 1'),
    ('warmup_steps: -1\n', 'warmup_steps must be >= 0'),
    ('max_minutes: -1.0\n', 'max_minutes must be >= 0'),
    ('lr: 0.0\n', 'lr must be a positive number'),
    ('lr: .nan\n', 'lr must be a positive number'),
    ('grad_clip: 0.0\n', 'grad_clip must be > 0'),
])
def test_a_bad_training_config_is_one_user_error(tmp_path, text, message):
    with pytest.raises(UserError) as e:
        load_config(write(tmp_path, text))
    assert message in str(e.value)
    assert '\n' not in str(e.value)


def test_bad_overrides_and_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="'batch_size' must be an integer, got list"):
        load_config(None, ['batch_size=[1]'])
    with pytest.raises(UserError, match=r"override 'lr\.x': 'lr' is 0\.001, not a mapping"):
        load_config(None, ['lr=0.001', 'lr.x=1'])
    assert load_config(None, ['lr=3e-4']).lr == 3e-4       # a number on the command line
    with pytest.raises(UserError, match='cannot read training config'):
        load_config(tmp_path / 'missing.yaml')
    with pytest.raises(UserError, match='cannot read training config'):
        load_config(write(tmp_path, 'lr: [1\n'))
    with pytest.raises(UserError, match='must be a mapping'):
        TrainConfig.from_dict([{'lr': 1.0}])
    # a direct construction is checked too (the recipe builds configs in code)
    with pytest.raises(UserError, match='batch_size must be >= 1'):
        TrainConfig(batch_size=0)
    # what was valid stays valid: ints for floats, lists for tuples, .inf for no clipping
    cfg = load_config(write(tmp_path, 'lr: 1\ngrad_clip: .inf\nmodel_overrides: '
                                      '{ground_size: [32, 128]}\npairs: {aerial_side_m: 40}\n'))
    assert cfg.lr == 1 and cfg.grad_clip == float('inf')


def test_a_bad_dataset_spec_is_a_user_error(tmp_path):
    from ciper_ros.data.build import build_dataset

    mc = build_model('ciper_t', **TINY_MODEL).config
    with pytest.raises(UserError, match="kitti dataset config key 'side_px' must be an integer"):
        build_dataset({'kind': 'kitti', 'root': str(tmp_path), 'side_px': 'big'}, mc)
    with pytest.raises(UserError, match='a dataset spec must be a mapping'):
        build_dataset(['kitti'], mc)


def test_the_cli_prints_one_error_line_and_exits_2(tmp_path):
    cfg = write(tmp_path, 'batch_size: 0\n')
    r = subprocess.run([sys.executable, '-m', 'ciper_ros.cli', 'train', '--config', str(cfg)],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ['ciper: error: training config batch_size must be >= 1, got 0']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'm.pt'
    model = build_model('ciper_t', **TINY_MODEL)
    save_checkpoint(path, model, step=5)
    return path, path.read_bytes()


@pytest.mark.parametrize('damage', ['truncated', 'zeroed_middle', 'empty', 'text'])
def test_a_damaged_checkpoint_is_reported_as_corrupt(checkpoint, tmp_path, damage):
    path, data = checkpoint
    bad = tmp_path / 'bad.pt'
    if damage == 'truncated':          # a copy cut short
        bad.write_bytes(data[:len(data) // 2])
    elif damage == 'zeroed_middle':    # torch.load alone loads this as other weights
        mid = len(data) // 2
        bad.write_bytes(data[:mid] + bytes(64) + data[mid + 64:])
    elif damage == 'empty':
        bad.write_bytes(b'')
    else:
        bad.write_text('not a checkpoint')
    with pytest.raises(CorruptFileError) as e:
        load_checkpoint(bad)
    assert str(e.value).startswith(f'corrupt checkpoint {bad}')
    assert '\n' not in str(e.value) and 'index' not in str(e.value)
    assert load_checkpoint(path)['step'] == 5      # the intact file still loads
