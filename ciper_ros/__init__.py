"""ciper_ros: cross-view image retrieval and 3-DoF pose estimation for ROS 2 vehicles."""

__version__ = '0.1.0'
