"""``localize_node`` console script (ROS 2 localization node).

The node is the subject of a later milestone (the ROS 2 node issue) and needs the runtime
(tile index, Localizer) that does not exist yet. Until then the executable is registered so
that packaging (setup.py, ``ros2 run`` paths) is tested end to end, and running it says
plainly that it is not available, with a non-zero exit status. It never pretends to localize.
"""

from __future__ import annotations

import sys

NOT_YET = ('ciper_ros localize_node: the ROS 2 localization node is not part of this release '
           'yet (it needs the runtime Localizer and tile index). Available now: the `ciper` '
           'command (ciper --help).')


def main(argv: list[str] | None = None) -> int:
    print(NOT_YET, file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
