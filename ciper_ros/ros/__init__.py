"""ROS 2 adapter: the node's wiring, outputs and diagnostics (rclpy); parameters too.

The parameters, the launch-argument logic and DDS isolation import no rclpy.
"""
