"""``KEY=VALUE`` items of the command line, parsed one way by every command that takes them.

Values are YAML, as ``ros2 run ... -p`` reads them (``top_k=3`` is an int, ``area=cross`` a
string, ``cities=[a, b]`` a list), and ``lr=3e-4`` is a float as a user means it (PyYAML's
YAML 1.1 would make it a string); an empty value is the empty string. Keys are dotted
names (``model_overrides.depth``); :func:`nest_items` turns the dots into nested dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
import re

from ciper_ros.util.errors import UserError

_KEY = re.compile(r'[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z')
# YAML 1.1 (PyYAML) reads '3e-4' as a string: its floats need a '.'; a user means a number
_EXPONENT_FLOAT = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+\Z')


def split_item(item: str, *, what: str = 'KEY=VALUE item') -> tuple[str, str]:
    """``'a.b=1'`` -> ``('a.b', '1')``; a UserError naming ``what`` for a malformed item."""
    key, sep, value = item.partition('=')
    if not sep:
        raise UserError(f'{what} {item!r} is not KEY=VALUE (no "=")')
    if not _KEY.match(key):
        raise UserError(f'{what} {item!r}: the key {key!r} is not a (dotted) name')
    if value.startswith('='):          # 'a==1': a doubled '=' is a typo, not the value '=1'
        raise UserError(f'{what} {item!r} has "==": write KEY=VALUE')
    return key, value


def parse_value(text: str, *, item: str = '', what: str = 'KEY=VALUE item'):
    """Parse the YAML value of one item (``''`` stays the empty string)."""
    import yaml

    if text == '':
        return ''
    if _EXPONENT_FLOAT.match(text):
        return float(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = f' ({e.problem})' if getattr(e, 'problem', None) else ''
        raise UserError(f'{what} {item or text!r}: the value is not valid YAML{mark}') from None


def parse_items(items: Iterable[str], *, what: str = 'KEY=VALUE item') -> dict[str, object]:
    """``['top_k=3', 'a.b=x']`` -> ``{'top_k': 3, 'a.b': 'x'}``; a later key wins."""
    out: dict[str, object] = {}
    for item in items:
        key, value = split_item(item, what=what)
        out[key] = parse_value(value, item=item, what=what)
    return out


def nest_items(flat: dict[str, object], into: dict | None = None) -> dict:
    """Nest dotted keys: ``{'a.b': 1}`` -> ``{'a': {'b': 1}}`` (merged into ``into``)."""
    out = {} if into is None else into
    for key, value in flat.items():
        *parents, last = key.split('.')
        target = out
        for p in parents:
            nxt = target.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise UserError(f'override {key!r}: {p!r} is {nxt!r}, not a mapping')
            target = nxt
        target[last] = value
    return out
