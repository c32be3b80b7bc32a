"""Class scores of skeleton windows from a trained skeleton model, as the evaluation computes them.

A window is what a live or untrimmed recognizer sees: the last T frames of one or more people.
:class:`WindowClassifier` runs every window through exactly the test-time clip pipeline of the
model's config (``data.test_transforms``, the stream step, persons fitted to ``data.max_persons``,
the length fitted to ``data.clip_len``; one clip, the transform's generator seeded with 0) and
returns softmax probabilities. The same window therefore gets the same scores whether it came
from a ring buffer of a live stream, from a sliding window over an untrimmed sequence, or from
the offline path (:meth:`WindowClassifier.scores` is the one place that does it).

With ``onnx=FILE`` (``actionfusion export-onnx CHECKPOINT --out FILE``) the model runs in ONNX
Runtime instead of torch, on the same clips (its persons M are fixed in the file and must be the
config's ``data.max_persons``; scores equal torch's within 1e-4, tested).

Skeleton conventions. A model trained on the sensor skeleton (``data.skeleton_source: ntu25``)
reads Kinect-25 joints in metres; a model trained on extracted poses (``coco17`` or
``blazepose33``) reads the pose estimator's world keypoints turned to y-up axes
(:func:`~actionfusion.datasets.skeleton_conventions.world_to_sensor_axes`) and re-expressed in its
layout, as training did (:mod:`actionfusion.datasets.skeleton_conventions`).
:meth:`WindowClassifier.from_pose_world` makes that input from per-frame world keypoints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...datasets.clip_dataset import fit_length, fit_persons
from ...datasets.skeleton_conventions import POSE2D_CONVENTION, SENSOR_CONVENTION, world_to_sensor_axes
from ...errors import MissingDependencyError, UsageError
from ...modalities.skeleton.layouts import convert_layout, get_layout
from ..checkpoints import load_weights, read_class_names
from ..config import ExperimentConfig
from ..data_builder import build_transform
from ..feature_checkpoint import resolve_checkpoint
from ..metrics import class_name
from ..model_inputs import model_input_keys
from ..trainer import build_model

PathLike = Union[str, "os.PathLike[str]"]


class WindowClassifier:
    """A trained skeleton-only model that scores windows ``[M, T, V, 3]``.

    Args:
        model: the model, weights loaded (put in eval mode on ``device``).
        cfg: its experiment config.
        device: torch device.
        class_names: names of the model's classes (default: NTU RGB+D 120's, by label).
        onnx: an ONNX file of this model (module docstring); None runs the torch model.

    Attributes:
        convention: the joint layout the model reads (``data.skeleton_source``, or ``data.layout``
            for the sensor skeleton).
        num_joints: V of that layout.
        max_persons: M of the model's clips.
        clip_len: T of the model's clips (a window of another length is resampled to it).
    """

    def __init__(self, model: nn.Module, cfg: ExperimentConfig, device: Union[str, torch.device] = "cpu",
                 class_names: Optional[Sequence[str]] = None, onnx: Optional[PathLike] = None) -> None:
        keys = model_input_keys(model)
        if tuple(keys) != ("skeleton",):
            raise UsageError(f"model {cfg.model.name!r} reads {list(keys)}; window recognition needs a "
                             "skeleton-only model (data.modalities: [skeleton])")
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        source = cfg.data.skeleton_source
        if source == POSE2D_CONVENTION:
            raise UsageError(f"the model reads 2D keypoints ({POSE2D_CONVENTION}); window recognition feeds world "
                             "keypoints: train on data.skeleton_source coco17 or blazepose33 for it")
        self.convention = cfg.data.layout if source == SENSOR_CONVENTION else source
        self.num_joints = get_layout(self.convention).num_joints
        self.max_persons = int(cfg.data.max_persons)
        self.clip_len = int(cfg.data.clip_len)
        self.num_classes = int(cfg.model.num_classes)
        self._transform = build_transform(cfg.data, train=False, layout=self.convention)
        self._class_names = tuple(class_names) if class_names is not None else None
        self._session = _onnx_session(onnx, self.max_persons) if onnx is not None else None
        self.runtime = "onnxruntime" if self._session is not None else "torch"

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[str, torch.device] = "cpu",
                        config: Union[None, PathLike, ExperimentConfig] = None,
                        class_names: Optional[Sequence[str]] = None, onnx: Optional[PathLike] = None
                        ) -> "WindowClassifier":
        """Load a training work dir, an epoch checkpoint dir or a weights file (``config.yaml``
        beside or above it, or ``config``); weights load safely and strictly. ``onnx``: run that
        export of it in ONNX Runtime instead."""
        weights, cfg, config_path = resolve_checkpoint(Path(path), config)
        model = build_model(cfg)
        load_weights(weights, model, strict=True)
        if class_names is None and config_path is not None:
            class_names = read_class_names(config_path.parent)  # the training run's classes.json
        return cls(model, cfg, device=device, class_names=class_names, onnx=onnx)

    def class_name(self, label: int) -> str:
        """The name of class ``label``."""
        return class_name(int(label), self._class_names)

    def from_pose_world(self, world: np.ndarray, layout: str) -> np.ndarray:
        """float32 [..., T, V, 3] in the model's convention from pose-estimator world keypoints.

        Args:
            world: float [..., T, K, 3] world keypoints of ``layout`` in metres, image axes (y down),
                as :class:`~actionfusion.modalities.pose.estimator.PersonPose` ``world`` holds them;
                zeros where nobody was found.
        Raises:
            UsageError: the model reads the sensor skeleton, which a video cannot give exactly.
        """
        if self.convention == SENSOR_CONVENTION and layout != SENSOR_CONVENTION:
            raise UsageError(f"the model reads sensor skeletons ({SENSOR_CONVENTION}); recognition from video needs a "
                             "model trained on extracted poses (data.skeleton_source: coco17 or blazepose33), "
                             "e.g. configs/synthetic/stgcn_coco17.yaml")
        up = world_to_sensor_axes(world)
        return up if layout == self.convention else convert_layout(up, layout, self.convention).astype(np.float32)

    def clips(self, windows: Sequence[np.ndarray]) -> torch.Tensor:
        """float32 [B, M, clip_len, V, C]: each window [M_w, T, V, 3] through the test pipeline."""
        out = []
        for window in windows:
            x = np.asarray(window, dtype=np.float32)
            if x.ndim != 4 or x.shape[2] != self.num_joints or x.shape[3] != 3:
                raise ValueError(f"a window must be [M, T, {self.num_joints}, 3] ({self.convention}); got {x.shape}")
            x = fit_persons(np.ascontiguousarray(x), self.max_persons)
            clip = np.asarray(self._transform(x.copy(), np.random.default_rng(0)), dtype=np.float32)
            out.append(np.ascontiguousarray(fit_length(clip, self.clip_len)))
        return torch.from_numpy(np.stack(out))

    @torch.inference_mode()
    def scores(self, windows: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """float32 [B, num_classes]: softmax probabilities of each window (B = len(windows))."""
        if len(windows) == 0:
            return np.zeros((0, self.num_classes), dtype=np.float32)
        parts = []
        for start in range(0, len(windows), batch_size):
            x = self.clips(windows[start:start + batch_size])
            if self._session is not None:
                (logits,) = self._session.run(None, {self._session.get_inputs()[0].name: x.numpy()})
                parts.append(torch.softmax(torch.from_numpy(np.asarray(logits, np.float32)), dim=-1).numpy())
            else:
                parts.append(torch.softmax(self.model(x.to(self.device)).float(), dim=-1).cpu().numpy())
        return np.concatenate(parts).astype(np.float32)


def _onnx_session(path: PathLike, persons: int):
    """An ONNX Runtime session of ``path`` whose skeleton input takes ``persons`` persons.

    Raises:
        MissingDependencyError: onnxruntime is not installed (with the install command).
        UsageError: no such file, or the file's persons axis is another number.
    """
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("running the model in ONNX Runtime needs onnxruntime: "
                                     "pip install 'actionfusion[export]'") from None
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such ONNX file (write one with `actionfusion export-onnx CHECKPOINT --out FILE`)")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape  # [batch, M, T, V, C], dynamic axes as names
    if len(shape) != 5 or (isinstance(shape[1], int) and shape[1] != persons):
        raise UsageError(f"{path}: its input is {shape}; the model's clips are [N, {persons}, T, V, C] "
                         f"(export with --persons {persons})")
    return session
