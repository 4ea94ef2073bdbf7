"""Launch files and the fusion config, checked without launch_ros (it cannot be installed here).

Which parameters a launch passes is decided by ciper_ros/ros/launch_args.py (plain Python,
tested directly); the launch files are read as Python source and the EKF config as YAML:
their arguments, nodes and topics must agree with setup.py, the node and each other.
"""

import ast
from dataclasses import fields
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from ciper_ros.ros.launch_args import (
    EKF_ARGUMENTS,
    NODE_ARGUMENTS,
    node_parameters,
    NOT_GIVEN,
    overrides,
)
from ciper_ros.ros.params import NodeParams
from ciper_ros.util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
LOCALIZE = ROOT / 'launch' / 'localize.launch.py'
FUSION = ROOT / 'launch' / 'fusion.launch.py'
EKF_YAML = ROOT / 'config' / 'ekf_fusion.yaml'


def parse(path: Path):
    """(module-level constants, tree) of a launch file."""
    tree = ast.parse(path.read_text())
    consts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return consts, tree


def calls(tree, name: str) -> list[dict]:
    """Keyword arguments (as AST nodes) of every call of ``name``."""
    return [{k.arg: k.value for k in n.keywords} for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == name]


def literal(node, consts: dict):
    return consts[node.id] if isinstance(node, ast.Name) else ast.literal_eval(node)


def ekf_config() -> dict:
    return yaml.safe_load(EKF_YAML.read_text())


# --- which overrides a launch passes (the defect: 8 defaults always won) ---

def test_launch_argument_defaults_override_nothing():
    defaults = {a.name: NOT_GIVEN for a in NODE_ARGUMENTS}
    assert overrides(defaults) == {}
    assert node_parameters('/ws/my.yaml', defaults) == ['/ws/my.yaml']
    assert node_parameters('/ws/my.yaml', {}) == ['/ws/my.yaml']


def test_a_given_argument_overrides_exactly_its_parameter_after_the_params_file():
    defaults = {a.name: NOT_GIVEN for a in NODE_ARGUMENTS}
    assert node_parameters('/ws/my.yaml', {**defaults, 'index': 'x'}) == [
        '/ws/my.yaml', {'index': 'x'}]
    given = {**defaults, 'index': '/maps/idx', 'publish_tf': 'False', 'use_sim_time': '1',
             'compressed': 'true', 'image_topic': 'cam/image'}
    assert node_parameters('/ws/my.yaml', given) == ['/ws/my.yaml', {
        'index': '/maps/idx', 'publish_tf': False, 'use_sim_time': True, 'compressed': True,
        'image_topic': 'cam/image'}]
    # what the launch file always sets goes last, whatever was given
    assert node_parameters('p.yaml', {'publish_tf': 'true'}, fixed={'publish_tf': False}) == [
        'p.yaml', {'publish_tf': False}]
    # EKF arguments set robot_localization's own parameter names
    assert overrides({'odom_topic': 'wheel/odom', 'imu_topic': ''}, EKF_ARGUMENTS) == {
        'odom0': 'wheel/odom'}


def test_bad_launch_argument_values_name_the_argument():
    with pytest.raises(UserError, match=r"publish_tf:='maybe': expected true or false"):
        overrides({'publish_tf': 'maybe'})
    with pytest.raises(UserError, match='params_file'):
        node_parameters('', {})


def test_launch_arguments_are_node_parameters_of_their_type():
    types = {f.name: type(f.default) for f in fields(NodeParams)} | {'use_sim_time': bool}
    names = {a.name for a in NODE_ARGUMENTS}
    assert names == {'model', 'index', 'image_topic', 'compressed', 'gnss_topic',
                     'odom_topic', 'tracking', 'publish_tf', 'use_sim_time'}
    for a in NODE_ARGUMENTS:
        assert a.target == a.name and a.kind is types[a.name], a.name
    assert [a.target for a in EKF_ARGUMENTS] == ['odom0', 'imu0', 'use_sim_time']
    for a in NODE_ARGUMENTS + EKF_ARGUMENTS:
        assert a.kind in (bool, str) and len(a.description) > 10, a.name
        assert a.help.startswith(a.description) and 'not given' in a.help


# --- the launch files, read as source ---

@pytest.mark.parametrize('path', [LOCALIZE, FUSION], ids=lambda p: p.name)
def test_every_launch_argument_is_described_and_defaults_to_not_given(path):
    consts, tree = parse(path)
    declared = calls(tree, 'DeclareLaunchArgument')
    assert declared
    for kw in declared:
        text = kw['description']
        if isinstance(text, ast.Attribute):          # a LaunchArgument's help
            assert text.attr == 'help'
            # an argument that sets a parameter never passes a default to the node
            assert isinstance(kw['default_value'], ast.Name)
            assert kw['default_value'].id == 'NOT_GIVEN'
        else:
            assert len(ast.literal_eval(text)) > 10
    # only these are declared by name: the rest come from NODE_/EKF_ARGUMENTS
    named = {ast.literal_eval(n.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, 'id', '') == 'DeclareLaunchArgument' and n.args
             and isinstance(n.args[0], ast.Constant)}
    assert named == ({'params_file', 'namespace'} if path == LOCALIZE
                     else {'ekf_params_file', 'namespace'})
    assert calls(tree, 'OpaqueFunction')             # values read at launch time


def test_localize_launch_runs_our_node():
    consts, tree = parse(LOCALIZE)
    (kw,) = calls(tree, 'Node')
    assert literal(kw['package'], consts) == 'ciper_ros'
    assert literal(kw['executable'], consts) == 'localize_node'
    assert literal(kw['name'], consts) == 'ciper_localizer'
    assert any(getattr(n.func, 'id', '') == 'node_parameters' for n in ast.walk(tree)
               if isinstance(n, ast.Call))
    setup = (ROOT / 'setup.py').read_text()
    assert "'localize_node = ciper_ros.ros.node:main'" in setup
    assert "glob('launch/*.launch.py')" in setup and "glob('config/*.yaml')" in setup


def test_fusion_launch_runs_two_ekfs_and_our_node_without_tf():
    consts, tree = parse(FUSION)
    (kw,) = calls(tree, 'Node')
    assert literal(kw['package'], consts) == 'robot_localization'
    assert literal(kw['executable'], consts) == 'ekf_node'
    ekfs = dict(consts['EKFS'])
    assert set(ekfs) == {'ekf_odom', 'ekf_map'}
    # both publish odometry/filtered by default: the map EKF's output is moved aside
    assert ekfs['ekf_map'] == [('odometry/filtered', 'odometry/filtered_map')]
    (include,) = calls(tree, 'IncludeLaunchDescription')
    given = ast.literal_eval(include['launch_arguments'])
    assert ('publish_tf', 'false') in given and ('tracking', 'false') in given
    assert "'localize.launch.py'" in FUSION.read_text()
    # and the YAML configures exactly these nodes, in any namespace
    assert set(ekf_config()) == {f'/**/{name}' for name in ekfs}


# --- the EKF configuration ---

def test_ekf_fusion_config_smooths_our_lagged_pose_on_relative_topics():
    doc = ekf_config()
    odom = doc['/**/ekf_odom']['ros__parameters']
    fuse = doc['/**/ekf_map']['ros__parameters']
    assert odom['world_frame'] == 'odom' and fuse['world_frame'] == 'map'
    assert fuse['two_d_mode'] and odom['two_d_mode']
    # our pose is stamped at image capture and arrives after inference (p95 ~0.1 s)
    assert fuse['smooth_lagged_data'] is True and fuse['history_length'] >= 1.0
    defaults = NodeParams.defaults()
    for p in (odom, fuse):
        assert (p['map_frame'], p['odom_frame'], p['base_link_frame']) == (
            defaults['map_frame'], defaults['odom_frame'], defaults['base_frame'])
        topics = {k: v for k, v in p.items() if k[:-1] in ('odom', 'pose', 'imu', 'twist')}
        assert topics and all(not v.startswith('/') for v in topics.values()), topics
        assert 'imu0' not in p        # set only when fusion.launch.py is given imu_topic
        for key in [k for k in p if k.endswith('_config')]:
            assert len(p[key]) == 15 and all(isinstance(v, bool) for v in p[key]), key
    assert [i for i, v in enumerate(fuse['pose0_config']) if v] == [0, 1, 5]   # x, y, yaw
    assert fuse['pose0_rejection_threshold'] > 0
    assert odom['odom0'] == fuse['odom0']


def test_ekf_subscribes_to_what_our_node_publishes():
    fuse = ekf_config()['/**/ekf_map']['ros__parameters']
    consts, _ = parse(LOCALIZE)
    node_name, topic = fuse['pose0'].split('/')
    assert node_name == consts['NODE_NAME']
    published = set()
    for path in (ROOT / 'ciper_ros' / 'ros').glob('*.py'):
        for n in ast.walk(ast.parse(path.read_text())):
            if (isinstance(n, ast.Call) and getattr(n.func, 'attr', '') == 'create_publisher'
                    and len(n.args) >= 2 and isinstance(n.args[1], ast.Constant)):
                published.add((ast.unparse(n.args[0]), n.args[1].value))
    assert ('PoseWithCovarianceStamped', f'~/{topic}') in published


def test_launch_logic_imports_nothing_heavy():
    """``ros2 launch`` runs the system Python: torch, numpy etc. may live in a venv only."""
    code = ('import sys\n'
            'import ciper_ros.ros.launch_args\n'
            'heavy = {"numpy", "torch", "yaml", "rclpy", "cv2"} & set(sys.modules)\n'
            'assert not heavy, heavy\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
