"""Skeleton sequences: joint layouts, graphs, transforms and encoders."""


def register_parts() -> None:
    """Register the skeleton encoders by importing their modules (loads torch)."""
    from . import bigru, ctrgcn, hypergcn, mamp, psumnet, stgcn, stgcn_unified, stgcnpp  # noqa: F401
    from . import cascadeformer  # noqa: F401
    from . import skeletonmae  # noqa: F401
    from . import finetec_completion  # noqa: F401
    from . import finetec  # noqa: F401
    from . import aclnet  # noqa: F401
