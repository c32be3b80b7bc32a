"""FineTec, assembled: completion -> dynamic/static views -> physics -> GCN (reconstructed).

FineTec (SmartDianLab/FineTec: README and figures only, no code; shared/specs/robust-longtail.md)
recognises actions from temporally corrupted skeletons in four steps. This module wires the parts
that live beside it into one registered encoder, ``finetec``; every open choice is an option:

1. **Completion** (``completion``): S_base from the corrupted input x [N, M, T, V, C].
   A joint is *observed* where it is non-zero (the benchmark's corruptions and the loader zero what
   is lost). ``"network"`` (default) runs :class:`~.finetec_completion.FineTecCompletion` (sub-module
   ``completion``) per person, keeping observed joints; persons with no observed joint stay zero.
   ``"interpolate"`` uses :func:`~.finetec_completion.interpolate_observed`, ``"none"`` passes x on.
   Pretrained completion weights load with the config's existing mechanism,
   ``model.init: {completion: PRETRAIN_WORK_DIR/encoder.safetensors}`` (``actionfusion pretrain
   configs/synthetic/finetec_completion.yaml`` writes it); ``freeze_completion`` keeps it fixed
   (no gradient, always in eval mode).
2. **Dynamic / static views** (:mod:`.finetec_regions`): five regions, each split at its median (or
   mean, ``threshold``) motion variance of S_base; S_dyna is S_base with Gaussian noise
   (``sigma`` x body scale) on the dynamic joints, S_stat on the static ones. The paper perturbs to
   build views but says nothing of inference; ``perturb`` chooses: ``"train"`` (default) draws noise
   in training mode only, so at evaluation S_dyna = S_stat = S_base and the model is deterministic;
   ``"seeded"`` draws training noise freely and, in eval mode, noise from a generator seeded with
   ``perturb_seed`` at every forward (deterministic for a given batch); ``"off"`` never perturbs.
3. **Physics** (:mod:`.finetec_physics`, ``physics``): a_base, a_dyna, a_stat from
   ``"finite_difference"`` (default) or one learned ``"euler_lagrange"`` estimator shared by the
   three sequences. A second difference turns independent position noise of variance s^2 into
   acceleration noise of variance 6 s^2 while smooth motion's accelerations are small: the
   acceleration streams make the model sensitive to jitter (see the benchmark's ``jitter`` rows).
4. **Fusion and GCN** (``fusion``, ``backbone``): ``"concat"`` (default) stacks the six streams
   (S_base, S_dyna, S_stat, a_base, a_dyna, a_stat) on the channel axis, 6 C channels into one GCN
   (its input BatchNorm normalises positions and accelerations per channel); ``"late"`` runs one
   GCN on the three positions (3 C) and one on the three accelerations (3 C) and concatenates their
   pooled features (num_features = 2 D). The backbone is a registered GCN built directly
   (``"ctrgcn"`` default, ``"stgcnpp"``) with ``num_classes=0`` and the model's ``layout``.

Training on corrupted inputs (``train_frame_drop``, an option beyond the paper's text, whose
recognizer is trained on corrupted sequences): in training mode, each clip is, with this
probability, corrupted before completion by one of FineTec's five frame masks
(:func:`~.finetec_masking.sample_frame_masks`, ``train_drop_types`` x ``train_drop_ratios``), the same
frames for all its persons, as the benchmark's frame corruptions do. Off (0) in evaluation always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import torch
from einops import rearrange

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead
from .finetec_completion import FineTecCompletion, interpolate_observed
from .finetec_masking import MASK_TYPES, check_mask_types, sample_frame_masks
from .finetec_physics import EulerLagrangeAcceleration, finite_difference_acceleration
from .finetec_regions import dynamic_joints, finetec_regions, perturb_joints
from .layouts import get_layout

COMPLETIONS = ("network", "interpolate", "none")
PERTURBS = ("train", "seeded", "off")
PHYSICS = ("finite_difference", "euler_lagrange")
FUSIONS = ("concat", "late")
BACKBONES = ("ctrgcn", "stgcnpp")


@dataclass
class FineTecStreams:
    """FineTec's intermediate sequences of one batch (all [N, M, T, V, C] but the masks).

    Attributes:
        observed: bool [N, M, T, V], the joints the input held (non-zero, after the training drop).
        base: S_base, the completed sequence.
        dyna, stat: S_dyna, S_stat (equal to ``base`` where no perturbation is drawn).
        dynamic: bool [N, V], the dynamic joints (the rest are static).
        acc_base, acc_dyna, acc_stat: the accelerations of base, dyna and stat.
    """

    observed: torch.Tensor
    base: torch.Tensor
    dyna: torch.Tensor
    stat: torch.Tensor
    dynamic: torch.Tensor
    acc_base: torch.Tensor
    acc_dyna: torch.Tensor
    acc_stat: torch.Tensor


def time_acceleration(x: torch.Tensor) -> torch.Tensor:
    """Finite-difference acceleration over time: x [N, M, T, V, C] -> [N, M, T, V, C]."""
    acc = finite_difference_acceleration(rearrange(x, "n m t v c -> n m v t c"))
    return rearrange(acc, "n m v t c -> n m t v c")


def build_backbone(name: str, in_channels: int, layout: str, num_persons: int, **kwargs: Any) -> Encoder:
    """A registered GCN without head (``num_classes=0``) reading ``in_channels`` channels of ``layout``."""
    if name == "ctrgcn":
        from .ctrgcn import CTRGCN

        return CTRGCN(num_classes=0, in_channels=in_channels, layout=layout, num_persons=num_persons, **kwargs)
    if name == "stgcnpp":
        from .stgcnpp import STGCNPP

        return STGCNPP(num_classes=0, in_channels=in_channels, layout=layout, **kwargs)
    raise ValueError(f"backbone must be one of {BACKBONES}, not {name!r}")


@register_model("finetec", modality="skeleton")
class FineTec(Encoder):
    """FineTec's recognizer (module docstring: the pipeline and every reconstructed choice).

    Args:
        num_classes: classifier outputs (0: none, ``forward`` gives the pooled feature).
        layout: joint layout (``"ntu25"``, ``"coco17"``, ``"blazepose33"``, ``"nw_ucla20"``): the regions
            (:func:`~.finetec_regions.finetec_regions`, from :func:`~.body_parts.body_parts`), the
            completion network's joint count and the backbone's graph.
        in_channels: C of the input positions.
        num_frames: T, the clip length (the completion network's fixed frame count).
        num_persons: M.
        completion: ``"network"``, ``"interpolate"`` or ``"none"``.
        completion_kwargs: extra kwargs of :class:`~.finetec_completion.FineTecCompletion`
            (``num_frames``, ``num_joints`` and ``in_channels`` come from the model's).
        freeze_completion: no gradient to the completion network, kept in eval mode.
        perturb: ``"train"``, ``"seeded"`` or ``"off"``; ``sigma`` its scale (x body scale);
            ``perturb_seed`` the evaluation seed of ``"seeded"``.
        threshold: ``"median"`` or ``"mean"`` split of each region into dynamic / static.
        physics: ``"finite_difference"`` or ``"euler_lagrange"``; ``physics_kwargs`` for the latter.
        fusion: ``"concat"`` or ``"late"``.
        backbone: ``"ctrgcn"`` or ``"stgcnpp"``; ``backbone_kwargs`` passed to it.
        drop_rate: dropout before the classifier.
        train_frame_drop: probability that a training clip is frame-masked before completion.
        train_drop_types, train_drop_ratios: the masks drawn for it.
    """

    input_keys = ("skeleton",)

    def __init__(self, num_classes: int = 60, layout: str = "ntu25", in_channels: int = 3, num_frames: int = 32,
                 num_persons: int = 2, completion: str = "network",
                 completion_kwargs: Optional[Dict[str, Any]] = None, freeze_completion: bool = False,
                 perturb: str = "train", sigma: float = 0.05, perturb_seed: int = 0, threshold: str = "median",
                 physics: str = "finite_difference", physics_kwargs: Optional[Dict[str, Any]] = None,
                 fusion: str = "concat", backbone: str = "ctrgcn", backbone_kwargs: Optional[Dict[str, Any]] = None,
                 drop_rate: float = 0.0, train_frame_drop: float = 0.0,
                 train_drop_types: Sequence[str] = tuple(MASK_TYPES),
                 train_drop_ratios: Sequence[float] = (0.25, 0.5, 0.75)) -> None:
        super().__init__()
        for value, known, what in ((completion, COMPLETIONS, "completion"), (perturb, PERTURBS, "perturb"),
                                   (physics, PHYSICS, "physics"), (fusion, FUSIONS, "fusion"),
                                   (backbone, BACKBONES, "backbone"), (threshold, ("median", "mean"), "threshold")):
            if value not in known:
                raise ValueError(f"{what} must be one of {known}, not {value!r}")
        if not 0.0 <= float(train_frame_drop) <= 1.0 or float(sigma) < 0:
            raise ValueError(f"train_frame_drop must lie in [0, 1] and sigma >= 0, got {train_frame_drop}, {sigma}")
        check_mask_types(tuple(train_drop_types), tuple(train_drop_ratios))
        self.layout, self.in_channels, self.num_frames = layout, int(in_channels), int(num_frames)
        self.num_joints = get_layout(layout).num_joints
        finetec_regions(layout)  # a layout without a body-part partition fails here, not at the first forward
        self.completion_mode, self.freeze_completion = completion, bool(freeze_completion)
        self.perturb, self.sigma, self.perturb_seed, self.threshold = perturb, float(sigma), int(perturb_seed), threshold
        self.fusion, self.drop_rate = fusion, float(drop_rate)
        self.train_frame_drop = float(train_frame_drop)
        self.train_drop_types, self.train_drop_ratios = tuple(train_drop_types), tuple(float(r) for r in train_drop_ratios)
        self.completion: Optional[FineTecCompletion] = None
        if completion == "network":
            kwargs = dict(completion_kwargs or {})
            self.completion = FineTecCompletion(num_classes=0, num_frames=self.num_frames, num_joints=self.num_joints,
                                                in_channels=self.in_channels, **kwargs)
            if self.freeze_completion:
                self.completion.requires_grad_(False)
        self.physics: Optional[EulerLagrangeAcceleration] = None
        if physics == "euler_lagrange":
            self.physics = EulerLagrangeAcceleration(self.num_joints, self.in_channels, **dict(physics_kwargs or {}))
        streams = 3 * self.in_channels
        extra = dict(backbone_kwargs or {})
        if fusion == "concat":
            self.backbone = build_backbone(backbone, 2 * streams, layout, num_persons, **extra)
            self.motion_backbone: Optional[Encoder] = None
            self.num_features = int(self.backbone.num_features)
        else:
            self.backbone = build_backbone(backbone, streams, layout, num_persons, **extra)
            self.motion_backbone = build_backbone(backbone, streams, layout, num_persons, **extra)
            self.num_features = int(self.backbone.num_features + self.motion_backbone.num_features)
        self.num_classes = int(num_classes)
        self.head: Optional[LinearHead] = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> LinearHead:
        """Dropout + Linear over the pooled feature."""
        return LinearHead(self.num_features, num_classes, self.drop_rate)

    def train(self, mode: bool = True) -> "FineTec":
        """As nn.Module.train, but a frozen completion network stays in eval mode."""
        super().train(mode)
        if self.completion is not None and self.freeze_completion:
            self.completion.eval()
        return self

    # -- the four steps -------------------------------------------------------------------------

    def drop_training_frames(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, M, T, V, C] with FineTec's frame masks applied to a ``train_frame_drop`` share of
        the clips (training mode only; the same frames for every person of a clip)."""
        if not self.training or self.train_frame_drop <= 0:
            return x
        n, _, t = x.shape[:3]
        keep = sample_frame_masks(n, t, self.train_drop_types, self.train_drop_ratios).to(x.device)  # [N, T]
        chosen = torch.rand(n, device=x.device) < self.train_frame_drop
        keep = keep | ~chosen[:, None]
        return x * keep[:, None, :, None, None].to(x.dtype)

    def complete(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """S_base [N, M, T, V, C] of x [N, M, T, V, C] with observed bool [N, M, T, V]."""
        if self.completion_mode == "none":
            return x
        persons = x.shape[1]
        flat_x = rearrange(x, "n m t v c -> (n m) t v c")
        flat_observed = rearrange(observed, "n m t v -> (n m) t v")
        if self.completion_mode == "interpolate":
            flat = interpolate_observed(flat_x, flat_observed)
        else:
            assert self.completion is not None
            if x.shape[2] != self.num_frames:
                raise ValueError(f"finetec's completion network reads clips of {self.num_frames} frames "
                                 f"(num_frames), got {x.shape[2]}")
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_completion):
                flat = self.completion.complete(flat_x, flat_observed).completed
        present = flat_observed.flatten(1).any(dim=1)  # a person never observed stays all zero
        flat = flat * present[:, None, None, None].to(flat.dtype)
        return rearrange(flat, "(n m) t v c -> n m t v c", m=persons)

    def views(self, base: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor]":
        """(S_dyna, S_stat, dynamic bool [N, V]) of S_base [N, M, T, V, C] (module docstring, step 2)."""
        dynamic = dynamic_joints(base.detach(), self.layout, self.threshold)
        if self.perturb == "off" or self.sigma == 0 or (self.perturb == "train" and not self.training):
            return base, base, dynamic
        generator = None
        if self.perturb == "seeded" and not self.training:
            generator = torch.Generator(device=base.device).manual_seed(self.perturb_seed)
        return (perturb_joints(base, dynamic, self.sigma, generator),
                perturb_joints(base, ~dynamic, self.sigma, generator), dynamic)

    def acceleration(self, x: torch.Tensor) -> torch.Tensor:
        """Accelerations [N, M, T, V, C] of positions x [N, M, T, V, C] (step 3)."""
        return time_acceleration(x) if self.physics is None else self.physics(x)

    def streams(self, x: torch.Tensor) -> FineTecStreams:
        """Steps 1-3 on x [N, M, T, V, C] (the training frame drop first, in training mode)."""
        if x.ndim != 5 or x.shape[3] != self.num_joints or x.shape[4] != self.in_channels:
            raise ValueError(f"finetec expects [N, M, T, {self.num_joints}, {self.in_channels}] ({self.layout}), "
                             f"got {tuple(x.shape)}")
        x = self.drop_training_frames(x)
        observed = x.abs().sum(dim=-1) > 0
        base = self.complete(x, observed)
        dyna, stat, dynamic = self.views(base)
        return FineTecStreams(observed, base, dyna, stat, dynamic,
                              self.acceleration(base), self.acceleration(dyna), self.acceleration(stat))

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x [N, M, T, V, C] -> EncoderOutput: sequence [N, T', D], pooled [N, D], spatial [N, D, T', V]
        (``late``: the two backbones' features concatenated, D = 2 x the backbone's width)."""
        s = self.streams(x)
        positions = torch.cat([s.base, s.dyna, s.stat], dim=-1)  # [N, M, T, V, 3C]
        accelerations = torch.cat([s.acc_base, s.acc_dyna, s.acc_stat], dim=-1)
        if self.motion_backbone is None:
            return self.backbone.forward_features(torch.cat([positions, accelerations], dim=-1))
        a = self.backbone.forward_features(positions)
        b = self.motion_backbone.forward_features(accelerations)
        spatial = torch.cat([a.spatial, b.spatial], dim=1) if a.spatial is not None and b.spatial is not None else None
        return EncoderOutput(sequence=torch.cat([a.sequence, b.sequence], dim=-1),
                             pooled=torch.cat([a.pooled, b.pooled], dim=-1), spatial=spatial)
