"""Runtime: what runs on the vehicle, independent of ROS (tile index, localizer, backends)."""
