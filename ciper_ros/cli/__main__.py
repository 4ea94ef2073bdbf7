"""``python -m ciper_ros.cli`` (what torchrun and the tests run) is ``ciper``."""

import sys

from ciper_ros.cli import main

if __name__ == '__main__':      # not when a spawned child process imports it
    sys.exit(main())
