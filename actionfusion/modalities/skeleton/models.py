"""Importing this module registers every skeleton encoder with :mod:`actionfusion.registry`.

``create_model`` and ``list_models`` import it on first use, so the model modules (and torch)
load only when a model is asked for.
"""

from . import ctrgcn, hypergcn, mamp, psumnet, stgcn, stgcnpp  # noqa: F401

__all__ = ["ctrgcn", "hypergcn", "mamp", "psumnet", "stgcn", "stgcnpp"]
