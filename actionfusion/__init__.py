"""actionfusion: multimodal human action recognition from RGB-D recordings."""

from .modalities.pose.extract import extract_poses
from .registry import create_model, list_models

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "extract_poses", "list_models"]
