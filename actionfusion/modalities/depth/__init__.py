"""Depth maps: crops and normalisation."""


def register_parts() -> None:
    """Register the depth encoders by importing their module (loads torch)."""
    from . import depth_encoder  # noqa: F401
