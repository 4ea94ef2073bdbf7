"""Node parameters: config/localize.yaml mirrors the defaults; bad values name the parameter."""

from pathlib import Path

import pytest
import yaml

from ciper_ros.ros.params import NodeParams, ParameterError

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
])
def test_bad_values_name_the_parameter(override, name):
    with pytest.raises(ParameterError, match=f"parameter '{name}'"):
        NodeParams.from_dict(override)


def test_good_values_and_unknown_names():
    p = NodeParams.from_dict({'index': '/idx', 'top_k': 3, 'camera_z_m': 2})
    assert p.top_k == 3 and p.camera_z_m == 2.0 and p.backend == 'torch'
    with pytest.raises(ParameterError, match='unknown parameter'):
        NodeParams.from_dict({'index': 'i', 'topk': 3})
