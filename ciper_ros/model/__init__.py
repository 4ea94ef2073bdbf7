"""CIPER: cross-view image retrieval and 3-DoF pose estimation transformer."""
