"""Test session setup: DDS confined to this machine before anything imports rclpy.

ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, a per-run ROS_DOMAIN_ID, a private ROS_LOG_DIR and a
shared-memory-only Fast DDS profile (see ciper_ros/ros/isolation.py).
"""

import os
from pathlib import Path
import sys
import tempfile

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ciper_ros.ros.isolation import isolated_ros_env  # noqa: E402

_domain = (os.getpid() % 100) + 1
os.environ.update(isolated_ros_env(domain_id=_domain,
                                   workdir=tempfile.mkdtemp(prefix='ciper_test_ros_')))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
# venv installs (make venv) have the ament index in the venv prefix
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return ROOT
