"""package.xml dependencies: every key resolves with rosdep on Humble, Jazzy and Kilted.

rosdistro cannot be read here, so test/data/rosdep/ keeps the facts (the rules of the keys
we use, the ROS packages of each distribution); the code's imports and the launch files'
nodes are read from source, so a new import or node fails here until it is declared.
"""

import ast
from pathlib import Path
import sys
import xml.etree.ElementTree as ET

from catkin_pkg.condition import evaluate_condition
from packaging.requirements import Requirement
import pytest
import yaml

# catkin_pkg 1.1 still calls pyparsing's camelCase API
pytestmark = pytest.mark.filterwarnings('ignore::pyparsing.PyparsingDeprecationWarning')

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / 'data' / 'rosdep'
RULES = yaml.safe_load((DATA / 'rules.yaml').read_text())
DISTROS = yaml.safe_load((DATA / 'ros_packages.yaml').read_text())
ROS_PACKAGES = set().union(*(set(d['packages']) for d in DISTROS.values()))

# Third-party Python modules the code imports: (rosdep key or None, PyPI distribution in
# requirements/base.txt or None). None as key: pip only, no rosdep key that installs it
# from apt (see the comment in package.xml).
PYTHON_IMPORTS = {
    'numpy': ('python3-numpy', 'numpy'),
    'scipy': ('python3-scipy', 'scipy'),
    'cv2': ('python3-opencv', 'opencv-python-headless'),
    'pymap3d': ('python3-pymap3d', 'pymap3d'),
    'pyproj': ('python3-pyproj', 'pyproj'),
    'yaml': ('python3-yaml', 'PyYAML'),
    'tqdm': ('python3-tqdm', 'tqdm'),
    'matplotlib': ('python3-matplotlib', 'matplotlib'),
    'torch': ('python3-torch', 'torch'),
    'faiss': ('python3-faiss', 'faiss-cpu'),
    'onnx': (None, 'onnx'),
    'onnxruntime': (None, 'onnxruntime'),
    'rosbags': (None, 'rosbags'),
    'numba': (None, 'numba'),
    'filterpy': (None, 'filterpy'),    # the GNSS + odometry baseline; no apt package
    'tensorrt': (None, None),          # the GPU target's own TensorRT install, optional
}
# imported by the tests only: test_depend
TEST_IMPORTS = {'pytest': 'python3-pytest', 'pyproj': 'python3-pyproj'}


def resolve(key: str, codename: str):
    """('apt' | 'pip', packages) for an ubuntu release, or None where the key has no rule."""
    rule = RULES[key]['ubuntu']
    if isinstance(rule, dict) and set(rule) - {'apt', 'pip'}:      # per release
        rule = rule.get(codename, rule.get('*'))
    if rule is None:
        return None
    if isinstance(rule, list):
        return 'apt', rule
    (installer, packages), = rule.items()
    return installer, packages['packages'] if isinstance(packages, dict) else packages


def dependencies(xml_text: str) -> list[tuple[str, str, str]]:
    """(tag, key, condition) of every *_depend element of a package.xml."""
    root = ET.fromstring(xml_text)
    return [(e.tag, e.text.strip(), e.get('condition', '')) for e in root
            if e.tag == 'depend' or e.tag.endswith('_depend')]


def dependency_problems(xml_text: str) -> list[str]:
    """List what would make ``rosdep install`` (or colcon) fail on one of DISTROS."""
    problems = []
    for tag, key, _ in dependencies(xml_text):
        if tag == 'buildtool_depend' and key == 'ament_python':
            problems.append('buildtool_depend ament_python: a build type, not a rosdep key')
    for distro, facts in DISTROS.items():
        env = {'ROS_DISTRO': distro, 'ROS_VERSION': '2', 'ROS_PYTHON_VERSION': '3'}
        for tag, key, condition in dependencies(xml_text):
            if condition and not evaluate_condition(condition, env):
                continue
            if key in facts['packages']:
                continue
            if key not in RULES:
                problems.append(f'{distro}: {tag} {key} is neither a ROS package of '
                                f'{distro} nor a rosdep key in test/data/rosdep/rules.yaml')
                continue
            resolved = resolve(key, facts['ubuntu'])
            if resolved is None:
                problems.append(f'{distro}: {key} has no rule for ubuntu {facts["ubuntu"]}')
            elif resolved[0] != 'apt':
                problems.append(f'{distro}: {key} installs with {resolved[0]} on ubuntu '
                                f'{facts["ubuntu"]} (refused under PEP 668): add a condition')
    return problems


def package_xml() -> str:
    return (ROOT / 'package.xml').read_text()


def declared(*tags: str, distro: str | None = None) -> set[str]:
    env = {'ROS_DISTRO': distro or '', 'ROS_VERSION': '2', 'ROS_PYTHON_VERSION': '3'}
    return {key for tag, key, cond in dependencies(package_xml()) if tag in tags
            and (distro is None or not cond or evaluate_condition(cond, env))}


def source_files() -> list[Path]:
    return sorted((ROOT / 'ciper_ros').rglob('*.py')) + sorted((ROOT / 'launch').glob('*.py'))


def imported_modules(files: list[Path] | None = None) -> dict[str, set[str]]:
    """Top-level module -> files importing it (top-level and function-local imports)."""
    out: dict[str, set[str]] = {}
    for path in source_files() if files is None else files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                out.setdefault(name.split('.')[0], set()).add(str(path.relative_to(ROOT)))
    return out


def launched_packages() -> set[str]:
    """Collect the ``package=`` of every Node(...) in the launch files."""
    out = set()
    for path in (ROOT / 'launch').glob('*.launch.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'Node':
                kw = {k.arg: k.value for k in node.keywords}
                out.add(ast.literal_eval(kw['package']))
    return out


def test_package_xml_resolves_on_every_distro():
    assert dependency_problems(package_xml()) == []
    root = ET.fromstring(package_xml())
    assert root.find('export').findtext('build_type') == 'ament_python'
    assert root.find('buildtool_depend') is None


def test_the_check_catches_what_broke_rosdep():
    """The old package.xml's faults, and keys that exist only as pip rules or not at all."""
    bad = """<package format="3"><name>x</name>
      <buildtool_depend>ament_python</buildtool_depend>
      <exec_depend>rclpy</exec_depend>
      <exec_depend>python3-onnxruntime</exec_depend>
      <exec_depend>python3-rosbags-pip</exec_depend>
      <exec_depend>python3-faiss</exec_depend>
      <exec_depend condition="$ROS_DISTRO == humble">python3-pytest</exec_depend>
    </package>"""
    problems = dependency_problems(bad)
    assert problems[0].startswith('buildtool_depend ament_python')
    assert sum('python3-onnxruntime is neither' in p for p in problems) == 3   # 3 distros
    assert sum('python3-rosbags-pip installs with pip' in p for p in problems) == 3
    # faiss: apt on jammy (Humble), a pip rule on noble (Jazzy, Kilted)
    assert [p.split(':')[0] for p in problems if 'python3-faiss' in p] == ['jazzy', 'kilted']
    assert not any('rclpy' in p or 'pytest' in p for p in problems)
    assert len(problems) == 1 + 3 + 3 + 2 + 3          # ament_python on each distro too
    assert resolve('python3-faiss', 'jammy') == ('apt', ['python3-faiss'])
    assert resolve('python3-torch', 'focal') is None


def test_every_ros_package_the_code_imports_or_launches_is_declared():
    exec_deps = declared('exec_depend', 'depend')
    used = (set(imported_modules()) & ROS_PACKAGES) | (launched_packages() - {'ciper_ros'})
    assert {'rclpy', 'launch', 'launch_ros', 'rosgraph_msgs', 'rcl_interfaces',
            'ament_index_python', 'robot_localization'} <= used
    assert used - exec_deps == set()
    # and nothing declared that nothing uses (tf2_ros: TF goes out as tf2_msgs directly)
    assert (exec_deps & ROS_PACKAGES) - used == set()


def test_every_third_party_import_is_declared_or_pip_only():
    modules = imported_modules()
    third_party = {m: files for m, files in modules.items()
                   if m not in sys.stdlib_module_names and m not in ROS_PACKAGES
                   and m not in ('ciper_ros', '__future__')}
    unknown = {m: sorted(f) for m, f in third_party.items() if m not in PYTHON_IMPORTS}
    assert unknown == {}, 'classify these imports in PYTHON_IMPORTS (rosdep key or pip only)'
    keys = {PYTHON_IMPORTS[m][0] for m in third_party} - {None}
    for distro in DISTROS:
        missing = keys - declared('exec_depend', 'depend', distro=distro)
        # faiss: from requirements/base.txt where rosdep has only a pip rule for it
        pip_there = {k for k in missing if resolve(k, DISTROS[distro]['ubuntu'])[0] == 'pip'}
        assert missing == pip_there, distro
    python_keys = {k for k in declared('exec_depend', 'depend') if k.startswith('python3-')}
    assert python_keys - keys == set()                           # none declared unused
    test_modules = set(imported_modules(sorted((ROOT / 'test').glob('*.py'))))
    assert set(TEST_IMPORTS) <= test_modules
    assert declared('test_depend') == set(TEST_IMPORTS.values())
    base = (ROOT / 'requirements' / 'base.txt').read_text()
    listed = {Requirement(line.split('#')[0]).name for line in base.splitlines()
              if line.split('#')[0].strip()}
    wanted = {PYTHON_IMPORTS[m][1] for m in third_party} - {None}
    assert wanted - listed == set()


@pytest.mark.parametrize('distro', sorted(DISTROS))
def test_facts_cover_the_three_distros(distro):
    assert DISTROS[distro]['ubuntu'] == {'humble': 'jammy', 'jazzy': 'noble',
                                         'kilted': 'noble'}[distro]
    assert 'ament_python' not in DISTROS[distro]['packages']
