"""Packaging: package.xml, setup.py data files and entry points, CI and README promises."""

import os
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'ciper_ros'
    assert root.find('export').findtext('build_type') == 'ament_python'
    # ament_python is a build type, not a package: rosdep cannot resolve it as a depend
    assert root.find('buildtool_depend') is None
    exec_deps = {e.text for e in root.findall('exec_depend')}
    for dep in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'nav_msgs', 'diagnostic_msgs',
                'tf2_msgs', 'launch', 'launch_ros'):
        assert dep in exec_deps
    from ciper_ros import __version__
    assert root.findtext('version') == __version__


def test_setup_cfg_puts_executables_where_ros2_run_looks():
    text = (ROOT / 'setup.cfg').read_text()
    assert 'script_dir=$base/lib/ciper_ros' in text
    assert 'install_scripts=$base/lib/ciper_ros' in text
    assert (ROOT / 'resource' / 'ciper_ros').is_file()


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(out), str(ROOT)], check=True, timeout=300,
                   cwd=tmp_path_factory.mktemp('build'))
    wheels = list(out.glob('ciper_ros-*.whl'))
    assert len(wheels) == 1
    return zipfile.ZipFile(wheels[0])


def test_wheel_installs_ament_resources_and_entry_points(wheel):
    names = wheel.namelist()
    data = [n for n in names if '.data/data/' in n]
    assert any(n.endswith('share/ament_index/resource_index/packages/ciper_ros') for n in data)
    assert any(n.endswith('share/ciper_ros/package.xml') for n in data)
    for shared in ('launch/localize.launch.py', 'launch/fusion.launch.py',
                   'config/localize.yaml', 'config/ekf_fusion.yaml'):
        assert any(n.endswith('share/ciper_ros/' + shared) for n in data), shared
    assert any(n.startswith('ciper_ros/geo/') for n in names)
    assert any(n.startswith('ciper_ros/maps/') for n in names)
    assert not any(n.startswith(('test/', 'bench/')) for n in names)
    entry = next(n for n in names if n.endswith('entry_points.txt'))
    text = wheel.read(entry).decode()
    assert 'ciper = ciper_ros.cli:main' in text
    assert 'localize_node = ciper_ros.ros.node:main' in text


def test_ament_index_finds_the_installed_package():
    """In the venv (make venv) the package is registered in the ament index."""
    prefix = Path(sys.prefix)
    marker = prefix / 'share/ament_index/resource_index/packages/ciper_ros'
    if not marker.exists():
        pytest.skip('ciper_ros is not installed into this interpreter prefix (use make venv)')
    from ament_index_python.packages import get_package_share_directory
    os.environ['AMENT_PREFIX_PATH'] = str(prefix)
    share = Path(get_package_share_directory('ciper_ros'))
    assert (share / 'package.xml').is_file()


def test_ci_runs_exactly_make_test_and_readme_says_so():
    ci = (ROOT / '.ci' / 'run').read_text()
    commands = [ln.strip() for ln in ci.splitlines()
                if ln.strip() and not ln.lstrip().startswith('#')]
    assert commands[-1] == 'make test'
    readme = (ROOT / 'README.md').read_text()
    assert 'make demo' in readme and 'make test' in readme


def requirements(name: str) -> list[Requirement]:
    lines = (ROOT / 'requirements' / name).read_text().splitlines()
    return [Requirement(line.split('#')[0]) for line in lines if line.split('#')[0].strip()]


def test_venv_requirements_pin_everything_exactly():
    for name in ('ros.txt', 'ros-build.txt', 'dev.txt', 'constraints.txt'):
        for req in requirements(name):
            assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == '==', (
                f'{name}: {req} is not an exact pin')


def test_base_requirements_are_ranges_the_venv_pins_satisfy():
    """base.txt serves ROS workspaces on Python 3.10-3.12; the venv's constraints pin it."""
    pins = {canonicalize_name(r.name): next(iter(r.specifier)).version
            for r in requirements('constraints.txt')}
    base = requirements('base.txt')
    assert 'torch' in {r.name for r in base}
    for req in base:
        assert not any(s.operator in ('==', '===', '~=') for s in req.specifier), (
            f'base.txt: {req} is a pin, not a range (pins go in constraints.txt)')
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f'{req.name} is not pinned in constraints.txt'
        assert req.specifier.contains(pin, prereleases=True), f'{req.name}=={pin} vs {req}'
    assert pins['torch'] == '2.13.0'          # the CPU build on this machine's local disk


def test_installed_package_finds_the_shipped_model_without_ament_or_pythonpath(tmp_path):
    # what `.venv/bin/ciper ...` does when run outside make: no AMENT_PREFIX_PATH, no
    # PYTHONPATH, another working directory
    code = ('from ciper_ros.model.build import default_model_path; import ciper_ros; '
            'print(ciper_ros.__file__); print(default_model_path())')
    env = {k: v for k, v in os.environ.items() if k not in ('AMENT_PREFIX_PATH', 'PYTHONPATH')}
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    if 'site-packages' not in r.stdout.split('\n')[0]:
        pytest.skip('ciper_ros is not installed in this environment (make venv installs it)')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith('share/ciper_ros/models/ciper_t_synthetic.pt')
