"""Launch file and fusion config, checked without launch_ros (it cannot be installed here).

The launch file is read as Python source: its declared arguments, executable and the
parameters it passes must match setup.py, config/localize.yaml and the node's parameters.
"""

import ast
from pathlib import Path

import yaml

from ciper_ros.ros.params import NodeParams

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / 'launch' / 'localize.launch.py'
REQUIRED = {'params_file', 'model', 'index', 'image_topic', 'compressed', 'gnss_topic',
            'odom_topic', 'publish_tf', 'use_sim_time', 'namespace'}


def launch_constants() -> dict:
    tree = ast.parse(LAUNCH.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out, tree


def test_launch_arguments_match_the_node_parameters():
    consts, tree = launch_constants()
    args = {name: (default, text) for name, default, text in consts['ARGUMENTS']}
    assert set(args) == REQUIRED
    assert all(len(text) > 10 for _, text in args.values())       # every one described
    defaults = NodeParams.defaults()
    passed = set(consts['BOOL_PARAMETERS']) | set(consts['STRING_PARAMETERS'])
    assert passed <= set(defaults) | {'use_sim_time'}
    for name in passed - {'use_sim_time'}:
        d = defaults[name]
        assert args[name][0] == (str(d).lower() if isinstance(d, bool) else d), name
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, 'id', '') == 'Node']
    kw = {k.arg: k.value for k in calls[0].keywords}
    assert ast.literal_eval(kw['executable']) == 'localize_node'
    assert ast.literal_eval(kw['package']) == 'ciper_ros'
    setup = (ROOT / 'setup.py').read_text()
    assert "'localize_node = ciper_ros.ros.node:main'" in setup
    assert "glob('launch/*.launch.py')" in setup and 'config' in setup


def test_ekf_fusion_config():
    doc = yaml.safe_load((ROOT / 'config' / 'ekf_fusion.yaml').read_text())
    odom = doc['ekf_odom']['ros__parameters']
    fuse = doc['ekf_map']['ros__parameters']
    assert odom['world_frame'] == 'odom' and fuse['world_frame'] == 'map'
    assert fuse['two_d_mode'] and odom['two_d_mode']
    assert fuse['pose0'].endswith('ciper_localizer/pose_with_covariance')
    assert [i for i, v in enumerate(fuse['pose0_config']) if v] == [0, 1, 5]   # x, y, yaw
    assert len(fuse['pose0_config']) == len(odom['odom0_config']) == 15
    assert fuse['pose0_rejection_threshold'] > 0
