"""``python -m ciper_ros.cli`` (what torchrun and the tests run) is ``ciper``."""

import sys

from ciper_ros.cli import main

sys.exit(main())
