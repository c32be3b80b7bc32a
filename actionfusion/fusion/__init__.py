"""Fusion of per-modality features: M-Mixer, EPAM attention, deformable cross-modal attention."""


def register_parts() -> None:
    """Register the fusions and the multimodal models by importing their modules (the registry calls this)."""
    from . import deformable_transformer, epam_net, late_fusion, mmixer, pose_guided_attention, recognizer  # noqa: F401
