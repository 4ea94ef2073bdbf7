"""Synthetic city: procedural 2.5-D world, aerial maps, ground cameras, drives, pairs."""
