"""actionfusion: multimodal human action recognition from RGB-D recordings."""

__version__ = "0.1.0"
