"""Training objectives: each a registered ``nn.Module`` taking ``(model, batch)`` and returning
named losses and metrics (:mod:`.base`). Importing this package registers the built-in ones."""

from .base import Objective, ObjectiveOutput, create_objective, list_objectives, register_objective
from . import supervised  # noqa: F401  (registers "cross_entropy")
from . import mamp  # noqa: F401  (registers "mamp")
from . import moco  # noqa: F401  (registers "moco")
from . import hiclr  # noqa: F401  (registers "hiclr")
from . import stars  # noqa: F401  (registers "stars")
from . import halp  # noqa: F401  (registers "halp")
from . import msclr  # noqa: F401  (registers "msclr")
from . import cascadeformer  # noqa: F401  (registers "cascadeformer")
from . import skeletonmae  # noqa: F401  (registers "skeletonmae")
from . import finetec  # noqa: F401  (registers "finetec_completion")
from . import brl  # noqa: F401  (registers "brl")
from . import aclnet  # noqa: F401  (registers "aclnet")

__all__ = ["Objective", "ObjectiveOutput", "create_objective", "list_objectives", "register_objective"]
