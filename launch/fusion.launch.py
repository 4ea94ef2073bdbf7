"""Fuse CIPER poses with wheel odometry (and an IMU) in robot_localization's two EKFs.

    ros2 launch ciper_ros fusion.launch.py index:=/path/to/index [odom_topic:=odom]
        [imu_topic:=imu/data] [ekf_params_file:=my_ekf.yaml] [namespace:=...]
        [any other argument of localize.launch.py]

- ``ekf_odom`` (robot_localization ``ekf_node``): odom -> base_link from wheel odometry
  (+ the IMU's yaw rate when ``imu_topic`` is given); publishes ``odometry/filtered``.
- ``ekf_map``: map -> odom from the same inputs plus our
  ``ciper_localizer/pose_with_covariance`` as ``pose0`` (lagged by our latency, hence
  ``smooth_lagged_data``); publishes ``odometry/filtered_map``.
- our node from localize.launch.py with ``publish_tf:=false`` (ekf_map owns map -> odom)
  and ``tracking:=false`` (the EKF fuses the odometry; each frame goes in on its own).

Every topic is relative, so ``namespace:=`` moves the three nodes together. The EKFs read
``ekf_params_file`` (default: the installed config/ekf_fusion.yaml); an argument overrides
its parameter only when given (ciper_ros/ros/launch_args.py).
"""

import os

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from ciper_ros.ros.launch_args import EKF_ARGUMENTS, node_parameters, NOT_GIVEN
from launch import LaunchDescription

# (node name, remappings): both publish odometry/filtered unless told otherwise
EKFS = (
    ('ekf_odom', []),
    ('ekf_map', [('odometry/filtered', 'odometry/filtered_map')]),
)


def typed(parameters: list) -> list:
    # a plain str would be read as YAML by launch_ros ('1' -> int, 'true' -> bool)
    return [{k: ParameterValue(v, value_type=str) if isinstance(v, str) else v
             for k, v in p.items()} if isinstance(p, dict) else p for p in parameters]


def launch_ekfs(context):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in EKF_ARGUMENTS}
    parameters = node_parameters(LaunchConfiguration('ekf_params_file').perform(context),
                                 values, EKF_ARGUMENTS)
    namespace = LaunchConfiguration('namespace').perform(context)
    return [Node(package='robot_localization', executable='ekf_node', name=name,
                 namespace=namespace, output='screen', parameters=typed(parameters),
                 remappings=remappings)
            for name, remappings in EKFS]


def generate_launch_description():
    default_params = PathJoinSubstitution([FindPackageShare('ciper_ros'), 'config',
                                           'ekf_fusion.yaml'])
    localize = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'localize.launch.py')
    return LaunchDescription([
        DeclareLaunchArgument('ekf_params_file', default_value=default_params,
                              description='parameter file of both EKFs (default: the '
                                          'installed config/ekf_fusion.yaml)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the EKFs and the localize node'),
        *[DeclareLaunchArgument(a.name, default_value=NOT_GIVEN, description=a.help)
          for a in EKF_ARGUMENTS],
        OpaqueFunction(function=launch_ekfs),
        # robot_localization's ekf_map publishes map -> odom: ours must not; and it fuses
        # the odometry itself, so it takes every frame on its own (not our tracked pose,
        # which has the odometry in it already)
        IncludeLaunchDescription(PythonLaunchDescriptionSource(localize),
                                 launch_arguments=[('publish_tf', 'false'),
                                                   ('tracking', 'false')]),
    ])
