"""The ``ciper`` command: one entry point, one module per command group.

Each group module (``maps``, ``synth``, ``train``, ``index``, ``localize``, ``model``,
``bag``, ``demo``) holds its parsers and handlers and exposes ``add_parser(subparsers)``;
``main`` assembles them. Heavy modules are imported inside the handlers, so ``ciper --help``
stays fast and a missing optional package only affects the subcommand that needs it.
"""

from ciper_ros.cli.main import main

__all__ = ['main']
