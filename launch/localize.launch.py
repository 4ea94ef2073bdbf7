"""Launch the CIPER localize node.

    ros2 launch ciper_ros localize.launch.py index:=/path/to/index [params_file:=my.yaml]
        [model:=... image_topic:=... compressed:=true gnss_topic:=... odom_topic:=...
         publish_tf:=false use_sim_time:=true namespace:=...]

The node reads ``params_file`` (default: the installed config/localize.yaml), then the
arguments given on the command line: an argument that is not given leaves the file's value
in force (ciper_ros/ros/launch_args.py decides, and a test checks it). Topics are
parameters rather than remaps: remapping ``image`` would not carry over to
``image/compressed``.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from ciper_ros.ros.launch_args import NODE_ARGUMENTS, node_parameters, NOT_GIVEN
from launch import LaunchDescription

NODE_NAME = 'ciper_localizer'


def typed(parameters: list) -> list:
    # a plain str would be read as YAML by launch_ros ('1' -> int, 'true' -> bool)
    return [{k: ParameterValue(v, value_type=str) if isinstance(v, str) else v
             for k, v in p.items()} if isinstance(p, dict) else p for p in parameters]


def launch_node(context):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in NODE_ARGUMENTS}
    parameters = node_parameters(LaunchConfiguration('params_file').perform(context), values)
    return [Node(package='ciper_ros', executable='localize_node', name=NODE_NAME,
                 namespace=LaunchConfiguration('namespace').perform(context),
                 output='screen', parameters=typed(parameters))]


def generate_launch_description():
    default_params = PathJoinSubstitution([FindPackageShare('ciper_ros'), 'config',
                                           'localize.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameter file of the node (default: the '
                                          'installed config/localize.yaml)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node (its topics are relative)'),
        *[DeclareLaunchArgument(a.name, default_value=NOT_GIVEN, description=a.help)
          for a in NODE_ARGUMENTS],
        OpaqueFunction(function=launch_node),
    ])
