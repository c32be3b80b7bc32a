"""One sub-package per modality: I/O helpers, transforms and encoders."""
