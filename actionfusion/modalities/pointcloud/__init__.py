"""Point clouds: back-projection from depth and point sampling."""


def register_parts() -> None:
    """Register the point-cloud encoders by importing their module (loads torch)."""
    from . import point_encoder  # noqa: F401
