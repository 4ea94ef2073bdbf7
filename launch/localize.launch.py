"""Launch the CIPER localize node.

    ros2 launch ciper_ros localize.launch.py index:=/path/to/index [model:=...]
        [image_topic:=/camera/image_raw compressed:=false gnss_topic:=/gnss/fix]
        [odom_topic:=/odom publish_tf:=true use_sim_time:=false namespace:=]

Every argument's default mirrors config/localize.yaml (a test checks it). Topics are passed
as parameters rather than remaps: remapping ``image`` would not carry over to
``image/compressed``. ``params_file`` defaults to the installed config/localize.yaml.
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

# (name, default, description): the defaults mirror config/localize.yaml
ARGUMENTS = [
    ('params_file', None, 'parameter file (default: the installed config/localize.yaml)'),
    ('model', '', 'checkpoint (.pt); empty = the shipped default model'),
    ('index', '', 'tile index directory built with `ciper index build` (required)'),
    ('image_topic', 'image', 'camera image topic (sensor_msgs/Image, or its /compressed)'),
    ('compressed', 'false', 'subscribe to <image_topic>/compressed (CompressedImage)'),
    ('gnss_topic', 'gnss/fix', 'GNSS fix topic (sensor_msgs/NavSatFix): the prior'),
    ('odom_topic', '', 'odometry topic (nav_msgs/Odometry) for map->odom; empty = none'),
    ('publish_tf', 'true', 'publish TF (false when robot_localization owns map->odom)'),
    ('use_sim_time', 'false', 'use /clock (bag replay)'),
    ('namespace', '', 'namespace of the node'),
]
BOOL_PARAMETERS = ('compressed', 'publish_tf', 'use_sim_time')
STRING_PARAMETERS = ('model', 'index', 'image_topic', 'gnss_topic', 'odom_topic')


def generate_launch_description():
    default_params = PathJoinSubstitution([FindPackageShare('ciper_ros'), 'config',
                                           'localize.yaml'])
    declared = [DeclareLaunchArgument(name, default_value=default_params if default is None
                                      else default, description=text)
                for name, default, text in ARGUMENTS]
    overrides = {name: ParameterValue(LaunchConfiguration(name), value_type=bool)
                 for name in BOOL_PARAMETERS}
    overrides.update({name: ParameterValue(LaunchConfiguration(name), value_type=str)
                      for name in STRING_PARAMETERS})
    node = Node(
        package='ciper_ros',
        executable='localize_node',
        name='ciper_localizer',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[LaunchConfiguration('params_file'), overrides],
    )
    return LaunchDescription(declared + [node])
