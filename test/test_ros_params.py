"""Node parameters: config/localize.yaml mirrors the defaults; bad values name the parameter."""

from pathlib import Path

import pytest
import yaml

from ciper_ros.ros.params import (
    check_ros_args,
    describe,
    NodeParams,
    parameter_sources,
    ParameterError,
)

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'localize.yaml'


def test_config_file_mirrors_every_default():
    doc = yaml.safe_load(CONFIG.read_text())
    values = doc['/**']['ros__parameters']
    assert values == NodeParams.defaults()
    for name, value in values.items():          # the same types ROS will declare
        assert type(value) is type(NodeParams.defaults()[name]), name


@pytest.mark.parametrize('override,name', [
    ({}, 'index'),
    ({'index': 'i', 'backend': 'tflite'}, 'backend'),
    ({'index': 'i', 'backend': 'onnxruntime'}, 'export_dir'),
    ({'index': 'i', 'top_k': 0}, 'top_k'),
    ({'index': 'i', 'gnss_topic': ''}, 'gnss_topic'),
    ({'index': 'i', 'max_fix_age_s': -1.0}, 'max_fix_age_s'),
    ({'index': 'i', 'camera_z_m': float('nan')}, 'camera_z_m'),
    ({'index': 'i', 'top_k': 'five'}, 'top_k'),
    ({'index': 'i', 'compressed': 1}, 'compressed'),
    ({'index': 'i', 'gate_sigmas': 500.0}, 'gate_sigmas'),
    ({'index': 'i', 'tf_rate_hz': -1.0}, 'tf_rate_hz'),
    ({'index': 'i', 'transform_tolerance': float('inf')}, 'transform_tolerance'),
    ({'index': 'i', 'stale_after_s': 0.0}, 'stale_after_s'),
])
def test_bad_values_name_the_parameter(override, name):
    with pytest.raises(ParameterError, match=f"parameter '{name}'"):
        NodeParams.from_dict(override)


def test_good_values_and_unknown_names():
    p = NodeParams.from_dict({'index': '/idx', 'top_k': 3, 'camera_z_m': 2})
    assert p.top_k == 3 and p.camera_z_m == 2.0 and p.backend == 'torch'
    with pytest.raises(ParameterError, match='unknown parameter'):
        NodeParams.from_dict({'index': 'i', 'topk': 3})


def test_every_parameter_has_a_description_and_the_run_time_ones_are_few():
    for name, default in NodeParams.defaults().items():
        d = describe(name)
        assert len(d['description']) > 10, name
        if d['range'] is not None:               # the default lies in its own range
            assert d['range'][0] <= default <= d['range'][1], name
        assert d['dynamic'] == (name in NodeParams.dynamic_names())
        assert d['dynamic'] or 'read-only' in d['description']
    # what the worker reads per frame (LocalizerConfig, FixPolicy) or per publish: not what
    # built the localizer, the subscriptions or the timers
    assert NodeParams.dynamic_names() == {
        'top_k', 'gate_sigmas', 'max_fix_age_s', 'default_fix_sigma_m', 'max_speed_mps',
        'max_prior_sigma_m', 'publish_tf', 'transform_tolerance', 'stale_after_s',
        'debug_image_side_m', 'debug_image_px'}


@pytest.mark.parametrize('rule', ['top_k:=', ':=3', 'top_k', '=3', 'top_k=3'])
def test_malformed_rules_are_refused_before_rcl(rule):
    with pytest.raises(ParameterError, match=f"malformed parameter rule '-p {rule}'"):
        check_ros_args(['localize_node', '--ros-args', '-p', rule])


def test_good_rules_and_missing_arguments(tmp_path):
    f = tmp_path / 'p.yaml'
    f.write_text('{}')
    check_ros_args(['x', '--ros-args', '-p', 'top_k:=3', '--param', 'index:=/a b',
                    '-p', 'ciper_localizer:gate_sigmas:=2.0', '--params-file', str(f),
                    '-p', 'qos_overrides./tf.publisher.depth:=5',
                    '-r', '__node:=other', '--', '-p', 'not ours'])
    check_ros_args(['x', '-p', 'top_k:='])          # outside --ros-args: not rcl's
    with pytest.raises(ParameterError, match='-p needs an argument'):
        check_ros_args(['x', '--ros-args', '-p'])
    with pytest.raises(ParameterError, match='no such file'):
        check_ros_args(['x', '--ros-args', '--params-file', str(tmp_path / 'none.yaml')])


def test_parameter_sources_tell_own_from_shared(tmp_path):
    f = tmp_path / 'stack.yaml'
    f.write_text(yaml.safe_dump({
        '/**': {'ros__parameters': {'robot_radius': 0.3, 'planner': {'hz': 5.0}}},
        '/**/ciper_localizer': {'ros__parameters': {'wild': 1}},
        'ciper_localizer': {'ros__parameters': {'top_k': 5}},
        '/ns/ciper_localizer': {'ros__parameters': {'gate_sigmas': 3.0}},
        'controller': {'ros__parameters': {'max_vel': 2.0}}}))
    argv = ['localize_node', '--ros-args', '--params-file', str(f), '-p', 'topk:=3',
            '-p', 'controller:kp:=1.0', '-p', 'ciper_localizer:cache_mb:=8.0']
    own, shared = parameter_sources(argv, node_name='ciper_localizer',
                                    fully_qualified_name='/ns/ciper_localizer')
    assert own == {'top_k', 'gate_sigmas', 'topk', 'cache_mb'}
    assert shared == {'robot_radius', 'planner.hz', 'wild'}


def test_rig_topics_pair_each_image_with_the_camera_info_beside_it():
    p = NodeParams.from_dict({'index': 'i', 'rig_image_topics':
                              ' /car/front/image_raw, rear/image_raw ,'})
    assert p.rig_topics() == [('/car/front/image_raw', '/car/front/camera_info'),
                              ('rear/image_raw', 'rear/camera_info')]
    assert NodeParams.from_dict({'index': 'i'}).rig_topics() == []
    with pytest.raises(ParameterError, match='at least two'):
        NodeParams.from_dict({'index': 'i', 'rig_image_topics': 'front/image_raw'})
    with pytest.raises(ParameterError, match='names a topic twice'):
        NodeParams.from_dict({'index': 'i', 'rig_image_topics': 'a/img,a/img'})
