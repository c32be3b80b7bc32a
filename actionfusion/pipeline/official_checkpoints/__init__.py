"""Converters from the official implementations' checkpoint layouts to ours, and back.

``convert_to_ours("ctrgcn", torch_state_dict)``; ``get_converter(name).to_official(ours)``;
``load_official_checkpoint(path)`` reads a released ``.pth`` safely. Command line:
``actionfusion convert-checkpoint --from NAME IN OUT.safetensors``.
"""

from .converters import (
    CONVERTERS,
    ConversionReport,
    build_target,
    convert_to_ours,
    get_converter,
    infer_num_classes,
    list_converters,
)
from .key_rules import (
    CheckpointConversionError,
    KeyRule,
    LayoutMismatchError,
    StateDictConverter,
    UnmappedKeysError,
    check_layout,
    layout_of,
)
from .official_loading import OfficialCheckpoint, load_official_checkpoint, unwrap_state_dict

__all__ = [
    "CONVERTERS", "CheckpointConversionError", "ConversionReport", "KeyRule", "LayoutMismatchError",
    "OfficialCheckpoint", "StateDictConverter", "UnmappedKeysError", "build_target", "check_layout",
    "convert_to_ours", "get_converter", "infer_num_classes", "layout_of", "list_converters",
    "load_official_checkpoint", "unwrap_state_dict",
]
