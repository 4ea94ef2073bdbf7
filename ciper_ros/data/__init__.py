"""Datasets: synthetic city pairs (and, later, VIGOR, KITTI, Ford), as torch tensors."""
