"""RGB video: decoding backends, person crops, frame transforms."""


def register_parts() -> None:
    """Register the RGB and pose-heatmap encoders by importing their modules (loads torch)."""
    from . import frame_encoder, torchvision_video, xshiftnet  # noqa: F401
