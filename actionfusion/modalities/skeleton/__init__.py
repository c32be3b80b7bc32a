"""Skeleton sequences: joint layouts, graphs, transforms and encoders."""
