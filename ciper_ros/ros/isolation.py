"""Keep DDS traffic on this machine: environment for tests, demos and scripts.

Every process we start that talks DDS gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, its
own ``ROS_DOMAIN_ID``, a private ``ROS_LOG_DIR`` and a Fast DDS profile that uses shared
memory only, with 32 MiB segments (the 512 KiB default drops 640x480 frames under
best-effort QoS). Pure Python: importing this module does not import rclpy.
"""

from __future__ import annotations

import os
from pathlib import Path
import random
import tempfile

from ciper_ros.util.errors import UserError

SHM_SEGMENT_BYTES = 32 * 1024 * 1024

FASTDDS_SHM_PROFILE = f"""<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>ciper_shm</transport_id>
        <type>SHM</type>
        <segment_size>{SHM_SEGMENT_BYTES}</segment_size>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="ciper_shm_only" is_default_profile="true">
      <rtps>
        <userTransports>
          <transport_id>ciper_shm</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def write_shm_profile(directory: str | os.PathLike) -> Path:
    """Write the shared-memory-only Fast DDS profile into ``directory``; return its path."""
    path = Path(directory) / 'fastdds_shm_only.xml'
    path.write_text(FASTDDS_SHM_PROFILE)
    return path


def domain_from_env(env: dict[str, str] | None = None) -> int | None:
    """Return the ``ROS_DOMAIN_ID`` the environment sets (None when unset or empty)."""
    text = (os.environ if env is None else env).get('ROS_DOMAIN_ID', '').strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise UserError(f'ROS_DOMAIN_ID must be an integer in [0, 101], got {text!r}') from None
    if not 0 <= value <= 101:
        raise UserError(f'ROS_DOMAIN_ID must be in [0, 101], got {value}')
    return value


def isolated_ros_env(*, domain_id: int | None = None, workdir: str | os.PathLike | None = None,
                     base: dict[str, str] | None = None) -> dict[str, str]:
    """Return a copy of ``base`` (default: os.environ) with DDS confined to this machine.

    :param domain_id: ROS_DOMAIN_ID to use (0-101); default: the environment's
        ``ROS_DOMAIN_ID`` when set (a user's vehicle computer: never pick another domain for
        them), else random per call
    :param workdir: where the profile and ROS logs go; default: a new temp dir
    """
    env = dict(os.environ if base is None else base)
    if domain_id is None:
        domain_id = domain_from_env(env)
    if domain_id is None:
        domain_id = random.SystemRandom().randint(1, 101)
    if not 0 <= domain_id <= 101:
        raise UserError(f'ROS_DOMAIN_ID must be in [0, 101], got {domain_id}')
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix='ciper_ros_'))
    (workdir / 'ros_log').mkdir(parents=True, exist_ok=True)
    env.update({
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_LOG_DIR': str(workdir / 'ros_log'),
        'RMW_IMPLEMENTATION': env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp'),
        'FASTDDS_DEFAULT_PROFILES_FILE': str(write_shm_profile(workdir)),
    })
    return env
