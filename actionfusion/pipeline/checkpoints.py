"""Checkpoints without pickle: weights and optimizer tensors in safetensors, the rest in JSON.

Layout under ``work_dir``::

    checkpoints/epoch_0003/model.safetensors          model weights (state_dict)
    checkpoints/epoch_0003/objective.safetensors      the objective's state (a decoder, queues), when it has one
    checkpoints/epoch_0003/trainer_state.safetensors  optimizer tensors, RNG states
    checkpoints/epoch_0003/trainer_state.json         epoch, global step, best metric, history,
                                                      optimizer structure, AMP scaler state
    best.safetensors, best.json                       weights selected by validation top-1

An epoch directory is written in a hidden staging directory and renamed into place, so
a checkpoint directory either exists complete or not at all (``kill -9`` safe). Loading uses
``safetensors`` or ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import errno
import pickle
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from safetensors.torch import load as safetensors_load_bytes
from safetensors.torch import load_file as safetensors_load_file
from safetensors.torch import save as safetensors_save_bytes
from torch import nn

from ..errors import CheckpointError, UnsafeLoadError, one_line
from ..io import atomic_publish_dir, atomic_write_bytes, atomic_write_json, load_json, make_staging_dir, remove_stale_staging

PathLike = Union[str, Path]

CHECKPOINT_DIRNAME = "checkpoints"
MODEL_FILE = "model.safetensors"
OBJECTIVE_FILE = "objective.safetensors"
STATE_TENSORS_FILE = "trainer_state.safetensors"
STATE_JSON_FILE = "trainer_state.json"
BEST_WEIGHTS = "best.safetensors"
BEST_JSON = "best.json"
CLASSES_FILE = "classes.json"
"""A work dir's class names by label (a JSON list), written when the benchmark names its classes."""
_EPOCH_DIR = re.compile(r"^epoch_(\d+)$")


def read_class_names(work_dir: PathLike) -> Optional[Tuple[str, ...]]:
    """The class names a training run recorded in ``work_dir`` (:data:`CLASSES_FILE`), or None.

    Raises:
        CheckpointError: the file exists but is not a JSON list of strings.
    """
    path = Path(work_dir) / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        names = load_json(path)
    except ValueError as err:
        raise CheckpointError(path, f"not valid JSON ({err})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(path, "expected a JSON list of class names")
    return tuple(names)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / a features-and-logits wrapper."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


def _cpu_tensors(named: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Detached contiguous CPU tensors; copies any that share memory (safetensors refuses aliases)."""
    out: Dict[str, torch.Tensor] = {}
    seen = set()
    for key, value in named.items():
        tensor = value.detach().to("cpu").contiguous()
        pointer = (tensor.untyped_storage().data_ptr(), tensor.storage_offset()) if tensor.numel() else None
        if pointer is not None and pointer in seen:
            tensor = tensor.clone()
        elif tensor.numel() and tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
            tensor = tensor.clone()  # a view into a bigger buffer
        if pointer is not None:
            seen.add(pointer)
        out[key] = tensor
    return out


def weights_bytes(model: nn.Module, metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """The model's ``state_dict`` serialised as safetensors bytes."""
    tensors = _cpu_tensors(unwrap_model(model).state_dict())
    return safetensors_save_bytes(tensors, metadata={str(k): str(v) for k, v in (metadata or {}).items()})


def save_weights(path: PathLike, model: nn.Module, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write the model's weights to ``path`` (safetensors, atomic)."""
    atomic_write_bytes(path, weights_bytes(model, metadata))


def _strip_prefix(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_weights(path: PathLike) -> Dict[str, torch.Tensor]:
    """A weight file as a flat ``{name: tensor}`` on CPU.

    ``.safetensors`` is read with safetensors; anything else with
    ``torch.load(weights_only=True)`` (a plain state_dict, or one nested under "state_dict" /
    "model"). A ``module.`` prefix (saved from DDP) is removed.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is damaged, empty, or not a mapping of names to tensors.
        UnsafeLoadError: loading it would need to unpickle objects (code); it is never done.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no weights file here", str(path))
    if path.suffix == ".safetensors":
        try:
            state = safetensors_load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises SafetensorError (not exported) on a bad header
            raise CheckpointError(path, f"not a readable safetensors file ({one_line(error, 200)}): the file is "
                                        "damaged or incomplete; write it again") from error
    else:
        try:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            # torch's message advises weights_only=False, which would run the file's code: not repeated.
            raise UnsafeLoadError(f"{path}: holds pickled objects beyond plain tensors, which are not loaded "
                                  "(loading them could run code); save a plain state_dict, or convert the "
                                  "file with `actionfusion convert-checkpoint`") from None
        except Exception as error:  # truncated zip, random bytes
            raise CheckpointError(path, f"not a readable torch weights file ({type(error).__name__}): the file is "
                                        "damaged or not a checkpoint") from None
        for key in ("state_dict", "model"):
            if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
                loaded = loaded[key]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise CheckpointError(path, "expected a mapping of names to tensors")
        state = dict(loaded)
    return _strip_prefix(state, "module.")


def load_weights(path: PathLike, model: nn.Module, strict: bool = True) -> Tuple[List[str], List[str]]:
    """Load weights from ``path`` into ``model`` (see :func:`read_weights`).

    Returns (missing keys, unexpected keys).

    Raises:
        CheckpointError: with ``strict``, any missing or unexpected key, or a shape that differs.
    """
    state = read_weights(path)
    target = unwrap_model(model)
    own = target.state_dict()
    shapes = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if shapes:
        key = shapes[0]
        raise CheckpointError(path, f"{len(shapes)} tensors have other shapes than the model's, e.g. {key} "
                                    f"{tuple(state[key].shape)} vs {tuple(own[key].shape)}: the weights belong to "
                                    "another model or config (model.name, model.kwargs, num_classes)")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise CheckpointError(path, f"does not fit the model: {len(missing)} missing keys "
                                    f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), "
                                    f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}"
                                    f"{', ...' if len(unexpected) > 3 else ''}): the weights belong to another "
                                    "model or config")
    result = target.load_state_dict(state, strict=strict)
    return list(result.missing_keys), list(result.unexpected_keys)


# ---------------------------------------------------------------- optimizer state, no pickle


def flatten_optimizer_state(state_dict: Mapping[str, Any]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (``optimizer.<param>.<name>``) and a JSON structure."""
    tensors: Dict[str, torch.Tensor] = {}
    per_param: Dict[str, Dict[str, Any]] = {}
    for param_id, slots in state_dict["state"].items():
        entry: Dict[str, Any] = {}
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                key = f"optimizer.{param_id}.{slot}"
                tensors[key] = value
                entry[slot] = {"tensor": key}
            else:
                entry[slot] = {"value": value}
        per_param[str(param_id)] = entry
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"state": per_param, "param_groups": groups}


def unflatten_optimizer_state(tensors: Mapping[str, torch.Tensor], structure: Mapping[str, Any]) -> Dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: Dict[int, Dict[str, Any]] = {}
    for param_id, slots in structure["state"].items():
        state[int(param_id)] = {
            slot: (tensors[spec["tensor"]] if "tensor" in spec else spec["value"]) for slot, spec in slots.items()
        }
    groups = []
    for group in structure["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------- epoch checkpoints


def checkpoint_dir(work_dir: PathLike) -> Path:
    """``work_dir/checkpoints``."""
    return Path(work_dir) / CHECKPOINT_DIRNAME


def list_checkpoints(work_dir: PathLike) -> List[Tuple[int, Path]]:
    """Complete epoch checkpoints in ``work_dir`` as (epoch, directory), oldest first."""
    root = checkpoint_dir(work_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _EPOCH_DIR.match(entry.name)
        if match and (entry / STATE_JSON_FILE).is_file() and (entry / MODEL_FILE).is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(work_dir: PathLike) -> Optional[Path]:
    """The newest complete epoch checkpoint directory, or None."""
    found = list_checkpoints(work_dir)
    return found[-1][1] if found else None


def save_checkpoint(
    work_dir: PathLike,
    epoch: int,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    trainer_state: Mapping[str, Any],
    keep_last: int = 2,
    scaler_state: Optional[Mapping[str, Any]] = None,
    objective: Optional[nn.Module] = None,
) -> Path:
    """Write ``checkpoints/epoch_<epoch>`` atomically, then keep only the newest ``keep_last``.

    ``objective``: a training objective whose parameters and buffers (a decoder, a queue) are
    saved beside the model's (``objective.safetensors``; skipped when its state is empty).

    ``trainer_state`` is JSON data (epoch, global_step, best metric, history...). The torch
    CPU RNG state (and CUDA ones when present) is stored as uint8 tensors.
    """
    root = checkpoint_dir(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(root)
    final = root / f"epoch_{epoch:04d}"
    if final.exists():  # a re-run of an epoch replaces its old checkpoint
        shutil.rmtree(final)
    staging = make_staging_dir(final)
    tensors: Dict[str, torch.Tensor] = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = cuda_state
    structure = None
    if optimizer is not None:
        optimizer_tensors, structure = flatten_optimizer_state(optimizer.state_dict())
        tensors.update(optimizer_tensors)
    (staging / STATE_TENSORS_FILE).write_bytes(safetensors_save_bytes(_cpu_tensors(tensors)))
    (staging / MODEL_FILE).write_bytes(weights_bytes(model, {"epoch": str(epoch)}))
    if objective is not None and objective.state_dict():
        (staging / OBJECTIVE_FILE).write_bytes(weights_bytes(objective, {"epoch": str(epoch)}))
    record = dict(trainer_state)
    record.update({"epoch": int(epoch), "optimizer": structure, "scaler": dict(scaler_state) if scaler_state else None})
    atomic_write_json(staging / STATE_JSON_FILE, record)
    atomic_publish_dir(staging, final)
    prune_checkpoints(work_dir, keep_last)
    return final


def prune_checkpoints(work_dir: PathLike, keep_last: int) -> List[Path]:
    """Delete all but the newest ``keep_last`` (>= 1) epoch checkpoints; returns the removed ones."""
    keep_last = max(int(keep_last), 1)
    found = list_checkpoints(work_dir)
    removed = []
    for _, path in found[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def load_checkpoint(
    path: PathLike,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    restore_rng: bool = True,
    objective: Optional[nn.Module] = None,
) -> Dict[str, Any]:
    """Restore an epoch checkpoint directory into ``model`` (and ``optimizer``, and ``objective``).

    Returns the trainer state (JSON part). With ``restore_rng`` the torch RNG states are set.
    """
    path = Path(path)
    if not (path / STATE_JSON_FILE).is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint directory (no {STATE_JSON_FILE})")
    load_weights(path / MODEL_FILE, model, strict=True)
    if objective is not None and objective.state_dict():
        if not (path / OBJECTIVE_FILE).is_file():
            raise FileNotFoundError(f"{path}: the checkpoint holds no {OBJECTIVE_FILE} for the objective's state")
        load_weights(path / OBJECTIVE_FILE, objective, strict=True)
    record = load_json(path / STATE_JSON_FILE)
    tensors = safetensors_load_bytes((path / STATE_TENSORS_FILE).read_bytes())
    if optimizer is not None:
        if record.get("optimizer") is None:
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        optimizer.load_state_dict(unflatten_optimizer_state(tensors, record["optimizer"]))
    if restore_rng:
        torch.set_rng_state(tensors["rng.torch_cpu"])
        cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    return record


def save_best(work_dir: PathLike, model: nn.Module, info: Mapping[str, Any]) -> Path:
    """Write ``best.safetensors`` and ``best.json`` (``info``: epoch, val metrics) atomically."""
    path = Path(work_dir) / BEST_WEIGHTS
    save_weights(path, model, {k: str(v) for k, v in info.items() if not isinstance(v, (dict, list))})
    atomic_write_json(Path(work_dir) / BEST_JSON, dict(info))
    return path
