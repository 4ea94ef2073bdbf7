"""localize_node's parameters over real DDS: shared params files, run-time changes, errors.

* rclpy's own parameters and keys of a shared ``/**`` section are accepted; a misspelt
  parameter given to this node is refused (one line, exit 2);
* ``ros2 param set``: read-only parameters refuse, bad values refuse with a reason, top_k
  and the gates take effect; ``ros2 param describe`` gives descriptions and ranges;
* a malformed ``-p`` rule or an index.json missing keys: one ``localize_node:`` line, exit 2.
"""

import json
import shutil
import signal
import subprocess
import sys

import pytest
from test_ros_node import Harness, NODE, start_node, stop_node
import yaml

from drivefixtures import bag_frames, city_index_drive

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('node_params')
    bag = city_index_drive(root, duration_s=2.0)
    return root, bag, [f for f in bag_frames(bag) if f['prior'] is not None]


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def _refused(proc) -> str:
    try:
        log, _ = proc.communicate(timeout=120)
    finally:
        stop_node(proc)
    assert proc.returncode == 2, log
    assert 'Traceback' not in log and '[ERROR]' not in log, log      # ours, not rcl's
    lines = [ln for ln in log.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith('localize_node: '), log
    return lines[0]


def test_shared_params_file_and_rclpy_parameters_are_accepted(world, ros, tmp_path):
    root, _, _ = world
    shared = tmp_path / 'stack.yaml'
    shared.write_text(yaml.safe_dump({
        '/**': {'ros__parameters': {'use_sim_time': False, 'robot_radius': 0.3,
                                    'planner': {'frequency': 5.0}}},
        NODE: {'ros__parameters': {'top_k': 5}},
        'some_other_node': {'ros__parameters': {'max_vel': 2.0}}}))
    proc = start_node(root, params_file=shared, start_type_description_service=False)
    h = Harness(proc)
    try:
        h.wait_matched()
        h.spin_until(lambda: h.diag(), what='diagnostics')
        from rcl_interfaces.srv import GetParameters

        got = h.call('get_parameters', GetParameters,
                     GetParameters.Request(names=['top_k', 'use_sim_time']))
        assert [v.integer_value for v in got.values][:1] == [5]      # its own section applied
    finally:
        h.close()
        code, log = stop_node(proc)
    assert code == 0, log
    assert "ignoring parameter(s) ['planner.frequency', 'robot_radius']" in log


@pytest.mark.parametrize('section', [NODE, f'/{NODE}'])
def test_misspelt_parameter_in_this_nodes_section_is_refused(world, tmp_path, section):
    root, _, _ = world
    f = tmp_path / 'mine.yaml'
    f.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'robot_radius': 0.3}},
                                 section: {'ros__parameters': {'topk': 5}}}))
    line = _refused(start_node(root, params_file=f))
    assert "unknown parameter(s) ['topk']" in line and 'robot_radius' not in line


@pytest.mark.parametrize('rule', ['top_k:=', ':=3', 'top_k'])
def test_malformed_parameter_rule_is_one_line(world, rule):
    root, _, _ = world
    cmd = [sys.executable, '-m', 'ciper_ros.ros.node', '--ros-args', '-p',
           f'index:={root / "index"}', '-p', rule]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = _refused(proc)
    assert f"malformed parameter rule '-p {rule}'" in line


def test_index_json_missing_keys_is_one_line(world, tmp_path):
    root, _, _ = world
    broken = tmp_path / 'index'
    shutil.copytree(root / 'index', broken)
    info = json.loads((broken / 'index.json').read_text())
    del info['crop_px'], info['datum_latlon_deg']
    (broken / 'index.json').write_text(json.dumps(info))
    line = _refused(start_node(root, index=str(broken)))
    assert str(broken) in line and 'crop_px' in line


def test_param_set_describe_read_only_ranges_and_run_time_changes(world, ros):
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import DescribeParameters

    root, _, frames = world
    proc = start_node(root)
    h = Harness(proc)
    try:
        h.wait_matched()
        desc = h.call('describe_parameters', DescribeParameters, DescribeParameters.Request(
            names=['index', 'top_k', 'gate_sigmas', 'publish_tf'])).descriptors
        index, top_k, gate, publish_tf = desc
        assert index.read_only and 'tile index' in index.description
        assert not top_k.read_only and top_k.type == ParameterType.PARAMETER_INTEGER
        assert (top_k.integer_range[0].from_value, top_k.integer_range[0].to_value) == (1, 64)
        assert gate.floating_point_range[0].to_value == 100.0 and not gate.read_only
        assert not publish_tf.read_only and publish_tf.description
        # read-only: refused, saying so; bad values: refused with a reason
        for values, why in [({'index': '/elsewhere'}, 'read-only parameter: index'),
                            ({'top_k': 0}, 'top_k out of range'),
                            ({'top_k': 'five'}, 'Wrong parameter type'),
                            ({'gate_sigmas': 500.0}, 'gate_sigmas out of range'),
                            ({'max_fix_age_s': -1.0}, 'max_fix_age_s out of range')]:
            res = h.set_params(**values)
            assert len(res) == 1 and not res[0].successful, values
            assert why in res[0].reason, res[0].reason
        # good values take effect: a broad prior has many candidate tiles, top_k caps them
        fr = frames[0]
        t, rgb = fr['t_ns'], fr['image']
        h.send_fix(t, fr['prior'].lat_deg, fr['prior'].lon_deg, sigma=12.0)
        h.spin_until(lambda: h.diag().get('gnss_buffered') == '1', what='fix buffered')
        h.send_image(t, rgb)
        h.wait_processed(1)
        h.spin_until(lambda: 'candidates' in h.diag(), what='candidates')
        assert int(h.diag()['candidates']) == 9                  # the default top_k
        assert all(r.successful for r in h.set_params(top_k=2, gate_sigmas=6.0))
        h.send_image(t + 1, rgb)
        h.spin_until(lambda: int(h.diag()['localized']) + int(h.diag()['rejected']) == 2,
                     what='second frame done')
        assert int(h.diag()['candidates']) == 2
        from rcl_interfaces.srv import GetParameters

        got = h.call('get_parameters', GetParameters,
                     GetParameters.Request(names=['top_k', 'gate_sigmas'])).values
        assert (got[0].integer_value, got[1].double_value) == (2, 6.0)
    finally:
        h.close()
        code, log = stop_node(proc, signal.SIGINT)
    assert code == 0, log
    assert "parameters set: {'top_k': 2}" in log and "{'gate_sigmas': 6.0}" in log
