"""``actionfusion export-onnx``: a trained model as one ONNX file that ONNX Runtime runs, checked against torch.

Inputs are named after the batch keys the model reads (``skeleton`` [B, M, T, V, C]; a multimodal
:class:`~actionfusion.fusion.recognizer.Recognizer` takes several: ``skeleton``, ``depth``
[B, 1, T, H, W], ``rgb`` [B, 3, T, H, W], ``pose_heatmap`` [B, K, T, H, W], ``points`` [B, T, P, 3]);
the output is ``logits`` [B, num_classes] (``features`` [B, D] for a model built with no head).

Dynamic axes. The batch axis is always dynamic. Each input's time axis is made dynamic, then checked:
the file is run in ONNX Runtime at half the export length, and at twice it where torch accepts that
length; when torch refuses the shorter clip or ONNX Runtime disagrees with torch, the file is exported
again with that time axis fixed, and the reason is kept. Measured with the registered skeleton models:

- dynamic time: stgcn, stgcn_clr, stgcn_unified, stgcnpp, ctrgcn, hypergcn(_large), psumnet(_body,
  _hand, _leg), aclnet, bigru, skeletonmae;
- fixed time: mamp (a learned embedding of ``num_frames // segment_frames`` positions and an input
  check of T = ``num_frames``), finetec_completion (its temporal MLP mixes exactly ``num_frames``),
  cascadeformer (torch takes any T <= ``max_frames``, but the traced ``nn.MultiheadAttention`` keeps
  the export T in a Reshape, so ONNX Runtime fails at another length);
- a Recognizer: per input, as its encoders and fusion allow (M-Mixer concatenates the modalities'
  sequences, so changing one input's length alone fails and both time axes are fixed).

Persons M, joints V and channels C are fixed at their export values (``--persons`` sets M).
Every file records the dynamic axes, the reason for each fixed time axis and the measured
ONNX Runtime-vs-torch differences in its metadata (``onnx.ModelProto.metadata_props``; ONNX Runtime:
``session.get_modelmeta().custom_metadata_map``).

The exporter is torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``). The dynamo
exporter needs ``onnxscript`` and ``onnx_ir`` (two more dependencies); measured on eight models at
batch 2, 8 frames, one thread, its files gave the same outputs but took 6-115x longer to write
(stgcn 6.0 s against 1.0 s, ctrgcn 25 s against 1.0 s, aclnet 55 s against 6.5 s).

Example shapes come from one test clip of the config's store when the store opens (exactly what the
model reads); otherwise from the config (``data.clip_len``, ``data.max_persons``, the layout's joints
and the clip configs of the other modalities), the skeleton's channels found by trying the model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..datasets.skeleton_conventions import CONVENTION_LAYOUTS
from ..errors import ActionFusionError, MissingDependencyError
from ..io import atomic_write_bytes
from .model_inputs import model_input_keys

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "actionfusion[export]" (or: pip install onnx onnxruntime)'
DEFAULT_OPSET = 17
"""LayerNormalization is a native op from opset 17 on."""
TOLERANCE = 1e-4
"""Largest |ONNX Runtime - torch| accepted, relative to the largest |torch output|."""
TIME_AXIS: dict[str, int] = {"skeleton": 2, "rgb": 2, "rgb_hands": 2, "pose_heatmap": 2, "depth": 2, "points": 1}
"""Index of the time axis of each batch key's tensor (batch first, one clip)."""
SKELETON_CHANNEL_GUESSES: tuple[int, ...] = (3, 12, 6, 2, 4)
"""Channel counts tried, in order, when neither a store clip nor the model tells C (12: PSUMNet's unified stream)."""


class OnnxExportError(ActionFusionError):
    """The model cannot be exported, or ONNX Runtime's outputs differ from torch's beyond :data:`TOLERANCE`."""


def require_onnx() -> tuple[Any, Any]:
    """(onnx, onnxruntime), or :class:`MissingDependencyError` naming the install command."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise MissingDependencyError(f"ONNX export needs the onnx and onnxruntime packages ({err}): "
                                     f"{INSTALL_HINT}") from err
    return onnx, onnxruntime


class PositionalInputs(nn.Module):
    """The model called with one tensor per key, in ``keys`` order (a dict for several keys): ONNX inputs are positional."""

    def __init__(self, model: nn.Module, keys: Sequence[str]) -> None:
        super().__init__()
        self.model, self.keys = model, tuple(keys)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        """tensors: one per key, e.g. skeleton [B, M, T, V, C] -> logits [B, num_classes]."""
        if len(self.keys) == 1:
            return self.model(tensors[0])
        return self.model(dict(zip(self.keys, tensors)))


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and measured (also the CLI's JSON line)."""

    out: str
    model: str
    inputs: dict[str, list[int]]
    output: str
    dynamic_axes: dict[str, dict[int, str]]
    fixed_time: dict[str, str] = field(default_factory=dict)
    """{input: why its time axis is fixed}."""
    time_limits: dict[str, str] = field(default_factory=dict)
    """{input: the longest-clip limit torch states, where it refused 2x the export length}."""
    checked_shapes: list[dict[str, list[int]]] = field(default_factory=list)
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    opset: int = DEFAULT_OPSET
    exporter: str = "torchscript"
    export_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resize_axis(x: torch.Tensor, axis: int, length: int) -> torch.Tensor:
    """``x`` with ``length`` entries along ``axis`` (repeated or cut), values kept realistic."""
    reps = -(-length // x.shape[axis])
    tiled = torch.cat([x] * reps, dim=axis) if reps > 1 else x
    return tiled.narrow(axis, 0, length).contiguous()


def _with_batch(inputs: dict[str, torch.Tensor], batch: int) -> dict[str, torch.Tensor]:
    return {k: _resize_axis(v, 0, batch) for k, v in inputs.items()}


@contextlib.contextmanager
def _stdout_to_log() -> Iterator[None]:
    """File descriptor 1 into the debug log while inside: on a failed op the TorchScript exporter's C++ log
    prints the whole graph to stdout (torch turns that log on whatever is asked), and errors must stay one line."""
    import ctypes

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            ctypes.CDLL(None).fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            if text:
                log.debug("torch.onnx.export printed:\n%s", text)


def _export_bytes(wrapper: nn.Module, inputs: dict[str, torch.Tensor], output: str,
                  dynamic: dict[str, dict[int, str]], opset: int) -> bytes:
    buffer = io.BytesIO()
    # Traced with autograd on and MHA's fast path off: in eval mode under no_grad nn.TransformerEncoderLayer
    # takes a fused kernel (aten::_transformer_encoder_layer_fwd) that has no ONNX form.
    fastpath = getattr(torch.backends, "mha", None)
    was_fast = fastpath.get_fastpath_enabled() if fastpath is not None else None
    with warnings.catch_warnings(), torch.enable_grad(), _stdout_to_log():
        warnings.simplefilter("ignore")  # tracer and deprecation notices: the numbers are checked below
        if fastpath is not None:
            fastpath.set_fastpath_enabled(False)
        try:
            torch.onnx.export(wrapper, tuple(inputs.values()), buffer, dynamo=False, input_names=list(inputs),
                              output_names=[output], dynamic_axes={**dynamic, output: {0: "batch"}},
                              opset_version=opset, do_constant_folding=True)
        except Exception as err:  # the exporter raises many types: unsupported ops, tracing errors
            raise OnnxExportError(f"torch.onnx.export failed at opset {opset}: {type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}") from err
        finally:
            if fastpath is not None:
                fastpath.set_fastpath_enabled(was_fast)
    return buffer.getvalue()


def _compare(session: Any, model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(max |ORT - torch|, that / max |torch|) at ``inputs``."""
    with torch.no_grad():
        ref = model(*inputs.values()).float().numpy()
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    if got.shape != ref.shape:
        return float("inf"), float("inf")
    diff = float(np.abs(got - ref).max()) if ref.size else 0.0
    return diff, diff / max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-12)


def _torch_accepts(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Optional[str]:
    """None if the model runs on ``inputs``, else the first line of its error."""
    try:
        with torch.no_grad():
            model(*inputs.values())
    except Exception as err:  # any refusal: shape checks raise ValueError, RuntimeError or others
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return None


def export_onnx(model: nn.Module, inputs: dict[str, torch.Tensor], out: Optional[PathLike] = None, *,
                opset: int = DEFAULT_OPSET, name: str = "", metadata: Optional[dict[str, str]] = None,
                tolerance: float = TOLERANCE) -> tuple[bytes, ExportReport]:
    """Export ``model`` (eval mode) for the example ``inputs`` {batch key: tensor}, check it, write ``out``.

    Returns the file's bytes and the report. The file is written (atomically) only after ONNX Runtime
    matched torch within ``tolerance`` at the export shapes, at batch + 1 and at every dynamic time length.

    Raises:
        MissingDependencyError: onnx or onnxruntime is not installed.
        OnnxExportError: an op does not export, or the outputs differ beyond ``tolerance``.
    """
    onnx, ort = require_onnx()
    started = time.perf_counter()
    model = model.eval()
    wrapper = PositionalInputs(model, list(inputs)).eval()
    output = "logits" if int(getattr(model, "num_classes", 1) or 0) > 0 else "features"
    batch = int(next(iter(inputs.values())).shape[0])
    dynamic = {k: {0: "batch", **({TIME_AXIS[k]: f"time_{k}" if len(inputs) > 1 else "time"}
                                  if k in TIME_AXIS else {})} for k in inputs}
    fixed: dict[str, str] = {}
    limits: dict[str, str] = {}

    def session_of(blob: bytes) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])

    def checks(current: dict[str, dict[int, str]]) -> list[dict[str, torch.Tensor]]:
        shapes = [inputs, _with_batch(inputs, batch + 1)]
        for key in inputs:
            axis = TIME_AXIS.get(key)
            if axis is None or axis not in current[key]:
                continue
            length = int(inputs[key].shape[axis])
            for other in sorted({max(1, length // 2), 2 * length} - {length}):
                shapes.append({**inputs, key: _resize_axis(inputs[key], axis, other)})
        return shapes

    while True:
        blob = _export_bytes(wrapper, inputs, output, dynamic, opset)
        session = session_of(blob)
        worst = (0.0, 0.0)
        checked = []
        retry = False
        for case in checks(dynamic):
            time_key = next((k for k in case if case[k].shape != inputs[k].shape and TIME_AXIS.get(k) is not None
                             and case[k].shape[TIME_AXIS[k]] != inputs[k].shape[TIME_AXIS[k]]), None)
            refusal = _torch_accepts(wrapper, case)
            if refusal is not None:
                if time_key is None:
                    raise OnnxExportError(f"the model refuses its own example shapes: {refusal}")
                length = int(case[time_key].shape[TIME_AXIS[time_key]])
                if length > inputs[time_key].shape[TIME_AXIS[time_key]]:
                    limits[time_key] = f"torch refuses {length} frames: {refusal}"
                    continue
                fixed[time_key] = f"the model refuses {length} frames: {refusal}"
            else:
                try:
                    abs_diff, rel_diff = _compare(session, wrapper, case)
                except Exception as err:  # onnxruntime's own errors: a shape baked into the graph
                    abs_diff = rel_diff = float("inf")
                    reason = f"ONNX Runtime fails at another length ({str(err).splitlines()[0][:200]})"
                else:
                    reason = f"ONNX Runtime differs from torch by {rel_diff:.2e} (relative) at another length"
                if rel_diff <= tolerance:
                    checked.append({k: list(v.shape) for k, v in case.items()})
                    worst = (max(worst[0], abs_diff), max(worst[1], rel_diff))
                    continue
                if time_key is None:
                    raise OnnxExportError(f"ONNX Runtime's output differs from torch's by {abs_diff:.3g} "
                                          f"({rel_diff:.3g} of the largest output; tolerance {tolerance:g}) at shapes "
                                          f"{ {k: list(v.shape) for k, v in case.items()} }")
                fixed[time_key] = reason
            dynamic[time_key].pop(TIME_AXIS[time_key], None)
            limits.pop(time_key, None)
            retry = True
            break
        if not retry:
            break

    report = ExportReport(out=str(out) if out is not None else "", model=name, output=output,
                          inputs={k: list(v.shape) for k, v in inputs.items()}, dynamic_axes=dynamic,
                          fixed_time=fixed, time_limits=limits, checked_shapes=checked, max_abs_diff=worst[0],
                          max_rel_diff=worst[1], opset=opset)
    proto = onnx.load_from_string(blob)
    entries = {"actionfusion_version": __version__, "model": name, "input_keys": json.dumps(list(inputs)),
               "output": output, "dynamic_axes": json.dumps(dynamic), "fixed_time_axes": json.dumps(fixed),
               "time_limits": json.dumps(limits), "max_abs_diff": f"{worst[0]:.3e}",
               "max_rel_diff": f"{worst[1]:.3e}", **(metadata or {})}
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, str(value)
    blob = proto.SerializeToString()
    report.export_seconds = round(time.perf_counter() - started, 3)
    if out is not None:
        atomic_write_bytes(out, blob)
    return blob, report


def _store_example(cfg: Any, keys: Sequence[str]) -> Optional[dict[str, torch.Tensor]]:
    """One test (or val) clip of the config's store, {key: tensor [1, ...]}; None when the store does not open."""
    from .data_builder import build_datasets

    try:
        datasets = build_datasets(cfg)
    except (ActionFusionError, OSError, ValueError, KeyError) as err:
        log.info("export-onnx: example shapes from the config (%s)", str(err).splitlines()[0] if str(err) else err)
        return None
    for split in ("test", "val", "train"):
        dataset = datasets.get(split)
        if dataset is not None and len(dataset):
            item = dataset[0]
            example = {}
            for key in keys:
                x = torch.as_tensor(np.asarray(item[key]), dtype=torch.float32)
                rank = len(_config_shape(cfg, key, 0, 0))
                example[key] = (x[0] if x.ndim == rank + 1 else x).unsqueeze(0)  # multi-clip: the first clip
            return example
    return None


def _config_shape(cfg: Any, key: str, frames: int, channels: int) -> tuple[int, ...]:
    """A single clip's shape of batch key ``key`` from the config (no batch axis)."""
    data = cfg.data
    if key == "skeleton":
        from ..modalities.skeleton.layouts import get_layout

        # the convention the batch key holds: the sensor's layout, or the extracted poses' (coco17, ...)
        layout = data.layout if data.skeleton_source == "ntu25" else CONVENTION_LAYOUTS[data.skeleton_source]
        return (data.max_persons, frames, len(get_layout(layout).joint_names), channels)
    if key == "rgb":
        return (3, data.rgb.num_frames, data.rgb.size, data.rgb.size)
    if key == "rgb_hands":
        return (3, data.rgb_hands.num_frames, data.rgb_hands.size, 2 * data.rgb_hands.size)
    if key == "depth":
        return (1, data.depth.num_frames, data.depth.size, data.depth.size)
    if key == "points":
        return (data.points.num_frames, data.points.num_points, 3)
    if key == "pose_heatmap":
        from ..modalities.skeleton.layouts import get_layout

        heat = data.pose_heatmap  # limb channels (with_limbs) are known only from a store clip
        return (len(get_layout(heat.layout).joint_names), heat.num_frames, heat.size, heat.size)
    raise OnnxExportError(f"no example shape known for batch key {key!r}")


def example_inputs(cfg: Any, model: nn.Module, batch: int = 2, frames: Optional[int] = None,
                   persons: Optional[int] = None, use_store: bool = True) -> dict[str, torch.Tensor]:
    """{batch key: example tensor [batch, ...]} for ``model`` (see the module docstring for where shapes come from).

    ``frames`` replaces the skeleton's T, ``persons`` its M.
    """
    keys = model_input_keys(model)
    example = _store_example(cfg, keys) if use_store else None
    if example is None:
        generator = torch.Generator().manual_seed(0)
        example = {}
        for key in keys:
            guesses = [int(getattr(model, "in_channels", 0) or 0)] + list(SKELETON_CHANNEL_GUESSES)
            for channels in [c for c in guesses if c > 0] if key == "skeleton" else [0]:
                shape = _config_shape(cfg, key, int(cfg.data.clip_len), channels)
                example[key] = torch.randn((1, *shape), generator=generator)
                if key != "skeleton" or _torch_accepts(PositionalInputs(model.eval(), [key]), {key: example[key]}) is None:
                    break
    if "skeleton" in example:
        x = example["skeleton"]
        if frames is not None:
            x = _resize_axis(x, 2, frames)
        if persons is not None:
            x = _resize_axis(x, 1, persons)
        example["skeleton"] = x
    return {k: _resize_axis(v, 0, batch) for k, v in example.items()}


def export_checkpoint(checkpoint: PathLike, out: PathLike, config: Optional[PathLike] = None,
                      opset: int = DEFAULT_OPSET, frames: Optional[int] = None, persons: Optional[int] = None,
                      batch: int = 2) -> ExportReport:
    """Export a training work dir, epoch checkpoint dir or weights file (config.yaml beside or ``config``)."""
    require_onnx()
    from .checkpoints import load_weights
    from .feature_checkpoint import resolve_checkpoint
    from .trainer import build_model

    weights, cfg, _ = resolve_checkpoint(checkpoint, config)
    model = build_model(cfg)
    load_weights(weights, model, strict=True)
    model.eval()
    inputs = example_inputs(cfg, model, batch=batch, frames=frames, persons=persons)
    _, report = export_onnx(model, inputs, out, opset=opset, name=str(cfg.model.name),
                            metadata={"checkpoint": str(weights), "experiment": str(cfg.experiment)})
    return report
