"""Importing this module registers every skeleton encoder with :mod:`actionfusion.registry`.

Kept for callers that import it; the registry itself calls the package's ``register_parts``.
"""

from . import register_parts

register_parts()
