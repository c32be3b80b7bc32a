"""Fusion of per-modality features: M-Mixer, EPAM attention, deformable cross-modal attention."""
