"""Configs, prepare, train, evaluate, feature extraction and the command line."""


def register_parts() -> None:
    """Registry hook: install the pretrained-weights table and loader (:mod:`.pretrained`)."""
    from .pretrained import register

    register()
