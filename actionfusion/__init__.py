"""actionfusion: multimodal human action recognition from RGB-D recordings."""

from typing import Any

from .modalities.pose.extract import extract_poses
from .registry import create_model, list_models, list_pretrained

__version__ = "0.1.0"

_FEATURE_API = ("FeatureExtractor", "RawSample", "StoreSample", "SampleFeatures")
"""Exported lazily: importing them loads torch and the models."""

__all__ = ["__version__", "create_model", "extract_poses", "list_models", "list_pretrained", *_FEATURE_API]


def __getattr__(name: str) -> Any:
    if name in _FEATURE_API:
        from .pipeline import feature_extraction

        return getattr(feature_extraction, name)
    raise AttributeError(f"module 'actionfusion' has no attribute {name!r}")
