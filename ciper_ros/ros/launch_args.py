"""Launch arguments of launch/*.launch.py, and the parameter overrides they make when given.

A launch argument always has a value (its default), so an override built from every
argument would replace the user's ``params_file`` with the defaults (an ``index`` set in the
file became ``''`` and the node died). Every argument here therefore defaults to ``''`` =
not given, and overrides its parameter only when given (a non-empty value). No launch,
launch_ros or rclpy here: the launch files call these functions from an ``OpaqueFunction``
with the arguments' performed values, and the tests call them directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ciper_ros.util.errors import UserError

NOT_GIVEN = ''
NOT_GIVEN_NOTE = ' (not given: the params file value)'


@dataclass(frozen=True)
class LaunchArgument:
    """A launch argument that sets one node parameter when it is given."""

    name: str
    kind: type                  # bool or str: the type of the parameter it sets
    description: str
    parameter: str = ''         # the parameter it sets; '' = the argument's own name

    @property
    def target(self) -> str:
        return self.parameter or self.name

    @property
    def help(self) -> str:
        """The description ``ros2 launch --show-args`` prints."""
        return self.description + NOT_GIVEN_NOTE


# the localize node's parameters that launch/localize.launch.py exposes (ros/params.py)
NODE_ARGUMENTS = (
    LaunchArgument('model', str, 'checkpoint (.pt) of the model; the params file default '
                   "'' is the shipped model"),
    LaunchArgument('index', str, 'tile index directory built with `ciper index build` '
                   '(required here or in the params file)'),
    LaunchArgument('image_topic', str, 'camera image topic (sensor_msgs/Image, or the '
                   'CompressedImage at <image_topic>/compressed)'),
    LaunchArgument('compressed', bool, 'true: subscribe to <image_topic>/compressed'),
    LaunchArgument('gnss_topic', str, 'GNSS fix topic (sensor_msgs/NavSatFix): the prior'),
    LaunchArgument('odom_topic', str, 'odometry topic (nav_msgs/Odometry) for map -> odom'),
    LaunchArgument('tracking', bool, 'with odom_topic: publish the tracked pose at odometry '
                   'rate (false: every frame on its own, e.g. into robot_localization)'),
    LaunchArgument('publish_tf', bool, 'publish TF; false when robot_localization owns '
                   'map -> odom'),
    LaunchArgument('use_sim_time', bool, 'true: use /clock (bag replay)'),
)

# robot_localization's ekf_node parameters that launch/fusion.launch.py exposes
EKF_ARGUMENTS = (
    LaunchArgument('odom_topic', str, 'wheel odometry topic (nav_msgs/Odometry) of both '
                   'EKFs and of the localize node', parameter='odom0'),
    LaunchArgument('imu_topic', str, 'IMU topic (sensor_msgs/Imu) of both EKFs for the yaw '
                   'rate; not given: no IMU', parameter='imu0'),
    LaunchArgument('use_sim_time', bool, 'true: use /clock (bag replay)'),
)


def parse_bool(name: str, text: str) -> bool:
    """Read a boolean launch argument, spelt as launch's own conditions accept it."""
    low = text.strip().lower()
    if low in ('true', '1'):
        return True
    if low in ('false', '0'):
        return False
    raise UserError(f'launch argument {name}:={text!r}: expected true or false')


def overrides(values: Mapping[str, str],
              arguments: Sequence[LaunchArgument] = NODE_ARGUMENTS) -> dict[str, bool | str]:
    """Return the parameters to override, typed: one per argument given (non-empty)."""
    out: dict[str, bool | str] = {}
    for arg in arguments:
        text = values.get(arg.name, NOT_GIVEN)
        if text == NOT_GIVEN:
            continue
        out[arg.target] = parse_bool(arg.name, text) if arg.kind is bool else text
    return out


def node_parameters(params_file: str, values: Mapping[str, str],
                    arguments: Sequence[LaunchArgument] = NODE_ARGUMENTS,
                    fixed: Mapping[str, bool | str] | None = None) -> list:
    """Return ``Node(parameters=...)``: the params file, then the overrides (later ones win).

    :param fixed: parameters the launch file sets whatever the arguments say (applied last)
    """
    if not params_file:
        raise UserError('launch argument params_file is empty: name a parameter file')
    given = overrides(values, arguments)
    given.update(fixed or {})
    return [params_file, given] if given else [params_file]
