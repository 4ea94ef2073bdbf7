"""ROS 2 adapter: message conversions (no rclpy needed) and the node (rclpy)."""
