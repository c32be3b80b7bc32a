"""Read an official checkpoint file safely and take its state dict out of the wrapping.

``torch.load(weights_only=True)``: no code runs. The one class allowed beyond tensors and
containers is ``argparse.Namespace``, which MAE-style trainers (MAMP's ``util/misc.save_model``)
store under ``"args"``; it is only reported. Wrappings handled:

* ``{"state_dict": ...}``: mmcv / mmaction / pyskl (with ``"meta"``, ``"optimizer"``).
* ``{"model": ...}``: MAMP (with ``"optimizer"``, ``"epoch"``, ``"scaler"``, ``"args"``).
* a bare state dict: CTR-GCN, Hyper-GCN, PSUMNet and ST-GCN save one (an ``OrderedDict``).
* a ``module.`` prefix on every key (saved from ``DataParallel`` / DDP) is removed.
* ``.safetensors`` files are read as they are.

Everything that is not a tensor (the wrapper's other entries, non-tensor values inside the
state dict) is listed in :attr:`OfficialCheckpoint.non_tensor` and not converted.
"""

from __future__ import annotations

import argparse
import errno
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Union

import torch
from safetensors.torch import load_file as safetensors_load_file

from ...errors import CheckpointError, UnsafeLoadError, one_line

WRAPPER_KEYS = ("state_dict", "model")  # tried in this order
DDP_PREFIX = "module."


@dataclass
class OfficialCheckpoint:
    """A state dict taken out of an official file, and what was found around it."""

    state_dict: Dict[str, torch.Tensor]
    wrapper_key: str = ""  # "" = the file was the state dict itself
    stripped_prefix: str = ""
    non_tensor: Dict[str, str] = field(default_factory=dict)  # entry -> its type name


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return f"{type(value).__name__} of {len(value)} entries"
    return type(value).__name__


def unwrap_state_dict(loaded: object, origin: str = "checkpoint") -> OfficialCheckpoint:
    """The state dict inside a loaded object (see the module docstring for the wrappings)."""
    if not isinstance(loaded, Mapping):
        raise UnsafeLoadError(f"{origin}: expected a mapping of names to tensors, got {type(loaded).__name__}")
    wrapper_key, non_tensor = "", {}
    for key in WRAPPER_KEYS:
        if isinstance(loaded.get(key), Mapping):
            wrapper_key = key
            non_tensor = {k: _describe(v) for k, v in loaded.items() if k != key}
            loaded = loaded[key]
            break
    state: Dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        if isinstance(value, torch.Tensor):
            state[str(key)] = value
        else:
            non_tensor[f"{wrapper_key}/{key}" if wrapper_key else str(key)] = _describe(value)
    if not state:
        raise UnsafeLoadError(f"{origin}: no tensors found (entries: {sorted(non_tensor)})")
    prefix = DDP_PREFIX if all(k.startswith(DDP_PREFIX) for k in state) else ""
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items()}
    return OfficialCheckpoint(state, wrapper_key, prefix, non_tensor)


def _unsafe_globals(path: Path) -> List[str]:
    """The classes / functions a full unpickle of ``path`` would import (nothing is imported)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint: the torch error says what it found
        return []


def load_official_checkpoint(path: Union[str, Path]) -> OfficialCheckpoint:
    """Read ``path`` (``.pth`` / ``.pt`` / ``.ckpt`` / ``.safetensors``) without running any code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", str(path))
    if path.suffix == ".safetensors":
        try:
            tensors = safetensors_load_file(str(path), device="cpu")
        except Exception as error:  # SafetensorError on a damaged header
            raise CheckpointError(path, f"not a readable safetensors file ({one_line(error, 200)})") \
                from None
        return unwrap_state_dict(tensors, str(path))
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch names the class a full unpickle would build
        # torch's own message advises weights_only=False, which would run the file's code: not passed on.
        raise UnsafeLoadError(
            f"{path}: cannot be read with torch.load(weights_only=True): it holds objects beyond tensors "
            f"({', '.join(_unsafe_globals(path)) or 'unknown classes'}), which are never loaded since loading them "
            "can run code. Ask its authors for a .safetensors or plain state_dict export"
        ) from None
    except Exception as error:  # a truncated or foreign file
        raise CheckpointError(path, f"not a readable torch checkpoint ({type(error).__name__}): damaged, or not a "
                                    "checkpoint") from None
    return unwrap_state_dict(loaded, str(path))
