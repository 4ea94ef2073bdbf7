"""The ``ciper`` command: the top-level parser, error handling and exit codes.

Exit codes: 0 done, 1 a check that did not pass (``ciper model check``), 2 a user error
(bad arguments, a wrong path, a malformed file: one ``ciper: error: ...`` line, no
traceback), 130 interrupted. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import sys

from ciper_ros import __version__
from ciper_ros.cli import bag, demo, index, localize, maps, model, synth, train
from ciper_ros.cli.common import CiperParser
from ciper_ros.util.errors import CiperError

GROUPS = (maps, synth, train, index, localize, model, bag, demo)   # the order of --help

# Path mistakes the user can fix, raised by open() / mkdir() / os.replace() anywhere.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError)
# What is printed as one line with exit 2: our own user errors (util.errors: every
# user-facing error type derives from CiperError) and path mistakes. A plain ValueError is a
# bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (CiperError, *PATH_ERRORS)


def build_parser() -> argparse.ArgumentParser:
    parser = CiperParser(prog='ciper', description='CIPER cross-view localization: maps, '
                         'training, runtime.')
    parser.add_argument('--version', action='version', version=f'ciper_ros {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for group in GROUPS:
        group.add_parser(sub)
    return parser


def run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Call a handler; a user error becomes one ``ciper: error:`` line and exit status 2."""
    try:
        return int(func(args) or 0)
    except USER_ERRORS as e:
        print(f'ciper: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('ciper: interrupted', file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.func, args)
