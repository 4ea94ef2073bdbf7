"""The `ciper` parser: coordinates of every hemisphere, KEY=VALUE items, a fast --help."""

import os
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ciper_ros.cli import main
from ciper_ros.cli.main import build_parser
from ciper_ros.util.errors import UserError
from ciper_ros.util.kv import nest_items, parse_items

ROOT = Path(__file__).resolve().parents[1]


def ciper(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, '-m', 'ciper_ros.cli', *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def parse(*argv):
    return build_parser().parse_args([str(a) for a in argv])


# ------------------------------------------------------------ negative coordinates
@pytest.mark.parametrize('argv,dest,value', [
    (['synth', 'city', '--datum', '-33.87,151.21', '--out', 'c'], 'datum', (-33.87, 151.21)),
    (['synth', 'city', '--datum=-33.87,151.21', '--out', 'c'], 'datum', (-33.87, 151.21)),
    (['map', 'crop', 'm', '--center', '-33.87,-70.65', '--out', 'x.png'], 'center',
     (-33.87, -70.65)),
    (['map', 'crop', 'm', '--center=-33.87,-70.65', '--out', 'x.png'], 'center',
     (-33.87, -70.65)),
    (['map', 'pattern', 'p.mbtiles', '--center', '-0.5,-.25'], 'center', (-0.5, -0.25)),
    (['bag', 'eval', 'b', '--index', 'i', '--datum', '-33.87,151.21'], 'datum',
     (-33.87, 151.21)),
    (['localize', '--index', 'i', '--images', 'f', '--out', 'o.csv', '--prior',
      '-33.87,-70.65,5'], 'prior', (-33.87, -70.65, 5.0)),
    (['localize', '--index', 'i', '--images', 'f', '--out', 'o.csv', '--prior',
      '-33.87,151.21'], 'prior', (-33.87, 151.21, None)),
])
def test_negative_coordinates_are_values(argv, dest, value):
    assert getattr(parse(*argv), dest) == value


def test_negative_area_is_a_value():
    args = parse('index', 'build', '--map', 'm', '--model', 'x.pt', '--out', 'o',
                 '--area', '-70.7,-33.9,-70.6,-33.8')
    a = args.area
    assert (a.west_deg, a.south_deg, a.east_deg, a.north_deg) == (-70.7, -33.9, -70.6, -33.8)


def test_joining_leaves_options_alone(capsys):
    # an option after an option that wants a value is still an option, not its value
    with pytest.raises(SystemExit) as e:
        parse('map', 'crop', 'm', '--center', '--out', 'x.png')
    assert e.value.code == 2 and '--center: expected one argument' in capsys.readouterr().err
    # a word starting with '-' that is not numbers is still refused as an unknown option
    with pytest.raises(SystemExit) as e:
        parse('map', 'crop', 'm', '--center', '-north', '--out', 'x.png')
    assert e.value.code == 2
    # after '--' nothing is rewritten
    args = parse('train', '--', '-1')
    assert args.overrides == ['-1']
    # a negative latitude out of range is still caught by the type
    with pytest.raises(SystemExit):
        parse('synth', 'city', '--datum', '-95,10', '--out', 'c')
    assert 'not a valid latitude,longitude' in capsys.readouterr().err


def test_southern_and_western_hemispheres_end_to_end(tmp_path):
    # Santiago de Chile (S, W): a pattern map written there, then cropped at its centre
    grid = tmp_path / 'santiago.mbtiles'
    r = ciper('map', 'pattern', grid, '--center', '-33.45,-70.65', '--size-m', '120',
              '--zooms', '18')
    assert r.returncode == 0, r.stderr
    out = tmp_path / 'crop.png'
    r = ciper('map', 'crop', grid, '--center', '-33.45,-70.65', '--side-m', '40',
              '--side-px', '64', '--out', out)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(out)).shape == (64, 64, 3)
    # Sydney (S, E): a synthetic city centred there
    city = tmp_path / 'sydney'
    r = ciper('synth', 'city', '--seed', '1', '--size-m', '100', '--zooms', '19',
              '--datum', '-33.87,151.21', '--out', city)
    assert r.returncode == 0, r.stderr
    assert 'at (-33.87, 151.21)' in r.stdout
    r = ciper('map', 'info', city / 'aerial.mbtiles')
    assert r.returncode == 0 and 'S -33.87' in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------ KEY=VALUE items
def test_kv_items_parse_as_yaml():
    got = parse_items(['top_k=3', 'lr=3e-4', 'area=cross', 'model_overrides.depth=6',
                       'cities=[a, b]', 'publish_tf=false', 'model=', 'expr=a=b', 'x=-1E3'])
    assert got == {'top_k': 3, 'lr': 3e-4, 'area': 'cross', 'model_overrides.depth': 6,
                   'cities': ['a', 'b'], 'publish_tf': False, 'model': '', 'expr': 'a=b',
                   'x': -1000.0}
    assert parse_items(['a=1', 'a=2']) == {'a': 2}          # the last one wins, as argparse
    assert nest_items({'a.b': 1, 'a.c': 2, 'd': 3}) == {'a': {'b': 1, 'c': 2}, 'd': 3}
    with pytest.raises(UserError, match="'a' is 1, not a mapping"):
        nest_items({'a': 1, 'a.b': 2})


@pytest.mark.parametrize('item,match', [
    ('a', r"--param 'a' is not KEY=VALUE \(no \"=\"\)"),
    ('=1', "--param '=1': the key '' is not a"),
    ('a==', "--param 'a==' has \"==\""),
    ('a==1', "--param 'a==1' has \"==\""),
    ('top k=1', "the key 'top k' is not a"),
    ('a.=1', "the key 'a.' is not a"),
    ('a=[1,', "--param 'a=\\[1,': the value is not valid YAML"),
])
def test_malformed_kv_item_is_a_user_error(item, match):
    with pytest.raises(UserError, match=match):
        parse_items([item], what='--param')


@pytest.mark.parametrize('argv,item', [
    (['bag', 'eval', 'no_bag', '--index', 'no_index', '--param', 'a=='], 'a=='),
    (['eval', '--model', 'no.pt', '--dataset', 'kitti', '--root', 'r', '--set', '=1'], '=1'),
    (['train', 'lr==0.1'], 'lr==0.1'),
    (['model', 'build', '--work-dir', 'unused', 'max_steps'], 'max_steps'),
    (['ablate', 'query-modes', '--test-city', 'c', '--out', 'unused', 'a==1'], 'a==1'),
])
def test_every_kv_option_refuses_a_malformed_item_first(argv, item, capsys, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)            # nothing may be written (checked below)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith('ciper: error: ') and repr(item) in err[0], err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ --help stays light
def test_help_imports_no_heavy_module():
    code = ('import sys; from ciper_ros.cli.main import build_parser; p = build_parser(); '
            "p.format_help(); print(sorted(m for m in ('torch', 'numpy', 'cv2', 'yaml', "
            "'rclpy', 'rosbags') if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '[]'


def test_the_json_of_results_keeps_nan_and_numpy_values(tmp_path):
    import json

    from ciper_ros.util.jsonio import dumps_json, write_json

    path = write_json(tmp_path / 'sub' / 'r.json', {
        'nan': float('nan'), 'f32': np.float32(0.5), 'i64': np.int64(7),
        'arr': np.arange(3), 'path': tmp_path / 'x', 'inf': float('inf')})
    back = json.loads(path.read_text())
    assert np.isnan(back['nan']) and back['inf'] == float('inf')
    assert back['f32'] == 0.5 and back['i64'] == 7 and back['arr'] == [0, 1, 2]
    assert back['path'] == str(tmp_path / 'x')
    assert [p.name for p in path.parent.iterdir()] == ['r.json']      # no temporary left
    with pytest.raises(TypeError, match='object is not JSON serialisable'):
        dumps_json({'x': object()})
    with pytest.raises(TypeError):
        write_json(tmp_path / 'sub' / 'r.json', {'x': object()})
    assert json.loads(path.read_text())['i64'] == 7               # the old file is intact
    assert [p.name for p in path.parent.iterdir()] == ['r.json']
