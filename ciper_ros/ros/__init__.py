"""ROS 2 adapter (rclpy). Nothing here is imported by the runtime, training or map code."""
