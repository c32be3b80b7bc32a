"""Skeleton sequences: joint layouts, graphs, transforms and encoders."""


def register_parts() -> None:
    """Register the skeleton encoders by importing their modules (loads torch)."""
    from . import ctrgcn, hypergcn, mamp, psumnet, stgcn, stgcnpp  # noqa: F401
