"""Depth maps: crops and normalisation."""
