"""rosbag2 / ROS 1 bag IO through the pure-Python ``rosbags`` library."""
