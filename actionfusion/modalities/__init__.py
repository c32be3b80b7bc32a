"""One sub-package per modality: I/O helpers, transforms and encoders."""


def register_parts() -> None:
    """Register the modalities' encoders and the shared heads (the registry calls this; loads torch).

    The imports sit here rather than at the top so that importing a modality's light helpers
    (layouts, transforms, video readers) does not load torch and the model code.
    """
    from . import depth, heads, linear_probe, pointcloud, rgb, skeleton  # noqa: F401  (heads, linear_probe register)

    for package in (depth, pointcloud, rgb, skeleton):
        package.register_parts()
