"""The package's layers import only downward (docs/architecture.md, "Layers").

Every module's imports are parsed, top-level and function-local alike (``ast.walk`` sees
both), and each import of another ciper_ros layer must name one that comes before it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'ciper_ros'
# one order; layers on one line sit side by side and may not import each other
LAYERS = [
    ['util'], ['geo'], ['metrics'], ['maps'], ['rosmsg'], ['synth'], ['model'], ['data'],
    ['train', 'baselines'], ['runtime'], ['bag'], ['ros'], ['experiments'], ['cli'],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
ROOT_MODULES = {'__init__'}          # ciper_ros/__init__.py: the version only


def module_imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every ciper_ros import in ``path``."""
    rel = path.relative_to(package.parent).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
        here = parts
    else:
        here = parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            if mod == package.name:        # `from ciper_ros import runtime` (or __version__)
                out += [(node.lineno, f'{mod}.{a.name}' if a.name in RANK else mod)
                        for a in node.names]
            else:
                out.append((node.lineno, mod))
    return [(line, m) for line, m in out if m.split('.')[0] == package.name]


def layer_of(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob('*.py')):
        rel = path.relative_to(package)
        own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if own not in RANK and own not in ROOT_MODULES:
            bad.append(f'{rel}: module outside every layer (add it to LAYERS or move it)')
            continue
        for line, mod in module_imports(path, package):
            target = layer_of(mod)
            if target == own or target == '__init__':
                continue
            if target not in RANK:
                bad.append(f'{rel}:{line}: imports {mod}, which is in no layer')
            elif own in ROOT_MODULES or RANK[target] >= RANK[own]:
                bad.append(f'{rel}:{line}: {own} imports {mod} ({target} is not below it)')
    return bad


def test_every_import_points_down():
    bad = violations()
    assert not bad, 'imports against the layer order:\n' + '\n'.join(bad)


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / 'ciper_ros'
    for name, text in files.items():
        f = pkg / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return pkg


@pytest.mark.parametrize('text', [
    'from ciper_ros.ros.node import main\n',                     # top level, absolute
    'def f():\n    from ciper_ros.bag import reader\n',            # function-local
    'def f():\n    import ciper_ros.cli\n',                        # plain import
    'from ..experiments import demo\n',                            # relative
    'from ciper_ros import ros\n',                                 # package attribute
])
def test_an_upward_import_fails(tmp_path, text):
    pkg = _write(tmp_path, {'util/__init__.py': '', 'runtime/__init__.py': '',
                            'runtime/x.py': text})
    bad = violations(pkg)
    assert len(bad) == 1 and 'runtime/x.py' in bad[0], bad


def test_downward_and_sibling_imports_pass(tmp_path):
    pkg = _write(tmp_path, {'runtime/x.py': 'from ciper_ros.geo.se2 import SE2\n'
                                            'from ciper_ros.runtime import y\n'
                                            'from . import z\n'})
    assert violations(pkg) == []


def test_side_by_side_layers_may_not_import_each_other(tmp_path):
    pkg = _write(tmp_path, {'baselines/x.py': 'from ciper_ros.train import evaluate\n'})
    assert len(violations(pkg)) == 1


def test_ros_modules_other_than_the_node_wiring_do_not_import_rclpy():
    wiring = {'node.py', 'outputs.py', 'diagnostics.py', 'debug.py'}
    bad = []
    for path in sorted((PACKAGE / 'ros').glob('*.py')):
        if path.name in wiring:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            bad += [f'{path.name}: {n}' for n in names if n.split('.')[0] == 'rclpy']
    assert not bad, bad


def test_public_api_is_where_users_look_and_stays_light():
    import subprocess
    import sys

    code = ('import sys\n'
            'import ciper_ros.runtime, ciper_ros.model\n'
            'assert "torch" not in sys.modules, "importing the packages loaded torch"\n'
            'from ciper_ros.runtime import (Localizer, LocalizerConfig, Prior, '
            'LocalizationResult, open_localizer, FramePipeline)\n'
            'from ciper_ros.model import build_model, load_model, ModelConfig\n'
            'assert callable(open_localizer) and callable(load_model)\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       cwd=PACKAGE.parent)
    assert r.returncode == 0, r.stderr
