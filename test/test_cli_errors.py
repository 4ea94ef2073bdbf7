"""`ciper` errors: one `ciper: error:` line and exit 2 for what a user can fix, early."""

import argparse
import os
from pathlib import Path
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ciper_ros.cli import main
from ciper_ros.cli.main import run
from ciper_ros.maps.errors import MapStoreError, TileNotFoundError
from ciper_ros.util.errors import CiperError, CorruptFileError, UserError

from mapfixtures import DATUM, write_marker_map

ROOT = Path(__file__).resolve().parents[1]


def ciper(*args, env=None):
    """`ciper ARGS` as a user runs it: a subprocess, its exit status and stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, '-m', 'ciper_ros.cli', *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def ciper_here(capsys):
    """`ciper ARGS` in this process (main(): the same handlers, without a Python start-up)."""
    def call(*args):
        code = main([str(a) for a in args])
        return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)

    return call


def one_error_line(r, *fragments):
    """Exit 2, no traceback, one stderr line `ciper: error: ...` holding every fragment."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert 'Traceback' not in r.stderr and len(lines) == 1, r.stderr
    assert lines[0].startswith('ciper: error: '), lines
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# ------------------------------------------------------------ what main() catches
@pytest.mark.parametrize('exc', [
    CiperError('a check failed'),
    UserError('batch_size must be >= 1, got 0'),
    CorruptFileError('city.npz is truncated'),
    MapStoreError('x.mbtiles is not an MBTiles file'),
    TileNotFoundError('tile z=17 x=1 y=2 is missing'),
    FileNotFoundError(2, 'No such file or directory', 'a.json'),
    FileExistsError(17, 'File exists', 'out'),
    IsADirectoryError(21, 'Is a directory', 'out'),
    NotADirectoryError(20, 'Not a directory', 'f/x'),
    PermissionError(13, 'Permission denied', '/root/x'),
])
def test_user_errors_are_one_line_and_exit_2(exc, capsys):
    def handler(args):
        raise exc

    assert run(handler, argparse.Namespace()) == 2
    assert capsys.readouterr().err == f'ciper: error: {exc}\n'


@pytest.mark.parametrize('exc', [RuntimeError('a bug'), KeyError('a bug'), TypeError('bug'),
                                 AssertionError('bug'), OSError(5, 'Input/output error'),
                                 ValueError('a bug: a plain ValueError is not a user error')])
def test_a_bug_keeps_its_traceback(exc):
    def handler(args):
        raise exc

    with pytest.raises(type(exc)):
        run(handler, argparse.Namespace())


def test_exit_codes_of_handlers(capsys):
    assert run(lambda a: None, argparse.Namespace()) == 0
    assert run(lambda a: 1, argparse.Namespace()) == 1        # `ciper model check`: differs

    def interrupted(args):
        raise KeyboardInterrupt

    assert run(interrupted, argparse.Namespace()) == 130
    assert capsys.readouterr().err == 'ciper: interrupted\n'


# ------------------------------------------------------------ paths, checked first
@pytest.fixture(scope='module')
def map_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('cli_err') / 'm.mbtiles'
    write_marker_map(path, zooms=(18,))
    return path


def test_a_directory_as_out_file_fails_first(tmp_path, map_file, ciper_here):
    d = tmp_path / 'a_dir'
    d.mkdir()
    center = f'{DATUM[0]},{DATUM[1]}'
    # each names a missing input too: the --out check comes before reading any of them
    for argv in (['map', 'crop', map_file, '--center', center, '--out', d],
                 ['synth', 'preview', '--city', tmp_path / 'no_city', '--out', d],
                 ['eval', '--baseline', 'geometric', '--city', tmp_path / 'no_city',
                  '--out', d],
                 ['localize', '--index', tmp_path / 'no_index', '--images', tmp_path,
                  '--no-prior', '--out', d],
                 ['calibrate', '--index', tmp_path / 'no_index', '--images', tmp_path,
                  '--out', d],
                 ['model', 'finalize', '--work-dir', tmp_path / 'no_run', '--out-model', d]):
        r = (ciper if argv[0] == 'map' else ciper_here)(*argv)
        option = '--out-model' if '--out-model' in argv else '--out'
        one_error_line(r, f'{option} {d} is a directory')
    assert list(d.iterdir()) == []


def test_a_directory_or_missing_file_as_calibration_fails_first(tmp_path, ciper_here):
    d = tmp_path / 'calib'
    d.mkdir()
    for calib, what in ((d, 'is a directory'), (tmp_path / 'none.json', 'does not exist')):
        # before the index (missing here) or the model is opened, and before an index build
        r = ciper_here('localize', '--index', tmp_path / 'no_index', '--images', tmp_path,
                       '--no-prior', '--calibration', calib, '--out', tmp_path / 'r.csv')
        one_error_line(r, f'--calibration {calib} {what}')
        r = ciper_here('eval', '--model', tmp_path / 'no.pt', '--city', tmp_path / 'no_city',
                       '--gnss-sigma-m', '10', '--index', tmp_path / 'idx', '--calibration',
                       calib)
        one_error_line(r, f'--calibration {calib} {what}')
    assert not (tmp_path / 'idx').exists() and not (tmp_path / 'r.csv').exists()


def test_a_file_as_out_directory_fails_first(tmp_path, map_file, ciper_here):
    f = tmp_path / 'a_file'
    f.write_text('keep me')
    no_model = tmp_path / 'no.pt'
    # index build: before the model (missing here) is read or anything is built
    r = ciper('index', 'build', '--map', map_file, '--model', no_model, '--out', f)
    one_error_line(r, f'--out {f} is an existing file')
    # under torchrun the rank's own shard directory is checked
    shard = tmp_path / 'idx.shard1of2'
    shard.write_text('not an index')
    r = ciper('index', 'build', '--map', map_file, '--model', no_model, '--out',
              tmp_path / 'idx', env={'WORLD_SIZE': '2', 'RANK': '1'})
    one_error_line(r, f'--out {shard} is an existing file')
    for argv in (['index', 'merge', tmp_path / 's0', tmp_path / 's1', '--out', f],
                 ['export', '--model', no_model, '--out', f],
                 ['synth', 'city', '--size-m', '100', '--out', f],
                 ['bag', 'eval', tmp_path / 'no_bag', '--index', tmp_path / 'no_index',
                  '--out', f]):
        one_error_line(ciper_here(*argv), f'--out {f} is an existing file')
    assert f.read_text() == 'keep me' and shard.read_text() == 'not an index'


def test_unwritable_outputs_are_one_line(tmp_path, map_file, ciper_here):
    center = f'{DATUM[0]},{DATUM[1]}'
    f = tmp_path / 'file'
    f.write_text('')
    # a path through a file: NotADirectoryError from mkdir
    r = ciper('map', 'crop', map_file, '--center', center, '--out', f / 'sub' / 'x.png')
    one_error_line(r, 'Not a directory')
    # an extension OpenCV has no writer for (cv2.error before)
    r = ciper_here('map', 'crop', map_file, '--center', center, '--out', tmp_path / 'x.foo')
    one_error_line(r, f'could not write {tmp_path / "x.foo"}')
