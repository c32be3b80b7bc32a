"""The multimodal Recognizer: ``{modality: encoder} -> fusion -> head``, built from config data.

A config names any subset of the registered encoders, one fusion and the head::

    model:
      name: recognizer
      num_classes: 60
      kwargs:
        encoders:                                  # entry name -> a registered model
          skeleton: {name: ctrgcn, kwargs: {in_channels: 3}}
          depth: {name: depth_tsm, kwargs: {width: 32}}
          rgb: {name: timm_frames, kwargs: {backbone: resnet18}, input_key: rgb}   # input_key: optional
        fusion: {name: mmixer, kwargs: {hidden_dim: 128}}   # late | mmixer | deformable3d | pose_guided_attention
        drop_rate: 0.5            # dropout before the fused head
        aux_loss_weight: 0.5      # + w * CE of each encoder's own head (0: off)
        modality_dropout: 0.2     # training: each modality of each sample is dropped with this probability

Each encoder reads its batch key (its ``input_keys``, or ``input_key`` of the entry) and gives an
:class:`~actionfusion.modalities.features.EncoderOutput`. Training drops modalities per sample
(zeroing their features before the fusion; at least one modality stays), so the model learns to
classify from any subset; at inference an encoder whose key is absent from the input is simply
not run and the fusion sees that modality as absent.

Encoder contract (:mod:`actionfusion.modalities.encoder_contract`): every encoder must declare
``input_keys`` (or its entry an ``input_key``) and ``num_features``. The recognizer's classifier is
its fused head together with every encoder's own head (the late fusion's, or the auxiliary
losses'): ``num_classes=0`` builds none of them and ``forward`` gives the fused feature
[B, num_features]; ``reset_classifier(n)`` replaces all of them; ``pre_logits`` gives the fused feature.

Loss (the trainer reads :meth:`Recognizer.forward_stream_logits` and :attr:`stream_loss_weights`)::

    L = CE(z_fused) + aux_loss_weight * sum_m CE(z_m)       (z_m: encoder m's own head on its features)
    L = sum_m CE(z_m)                                       (late fusion; prediction sum_m w_m z_m)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from ..errors import UsageError
from ..modalities.encoder_contract import Encoder, check_encoder, declared_input_keys
from ..modalities.features import EncoderOutput
from ..registry import create_model, register_model
from .base import FusionOutput, create_fusion

FUSED_STREAM = "fused"
"""Name of the fused head's logits among the stream logits."""


@dataclass
class RecognizerFeatures:
    """What :meth:`Recognizer.forward_features` returns.

    Attributes:
        fused: [B, D_f] the fusion's clip feature (the head's input).
        modalities: {modality: EncoderOutput} each encoder's own output (before modality dropout).
        branches: {modality: [B, D_m']} each modality's feature after fusion.
        present: {modality: bool [B]} which modalities the fusion saw, per sample.
        aux: ``loss_*`` terms of the encoders and the fusion (weights applied), added by the trainer.
    """

    fused: torch.Tensor
    modalities: Dict[str, EncoderOutput]
    branches: Dict[str, torch.Tensor]
    present: Dict[str, torch.Tensor]
    aux: Dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def pooled(self) -> torch.Tensor:
        """The fused feature [B, D_f] (the name every EncoderOutput uses)."""
        return self.fused


def _check_part_spec(what: str, spec: object, allowed: Tuple[str, ...]) -> None:
    """Raise UsageError unless ``spec`` is a mapping with a ``name`` and no key outside ``allowed``.

    A YAML flow mapping without a space after its colons (``{name:ctrgcn}``) parses as one key
    ``"name:ctrgcn"`` with no value; the message shows the keys found so that slip is visible.
    """
    if not isinstance(spec, Mapping):
        raise UsageError(f"{what}: expected a mapping with 'name' (and optional {', '.join(map(repr, allowed[1:]))}), "
                         f"got {type(spec).__name__} {spec!r}")
    unknown = sorted(str(key) for key in set(spec) - set(allowed))
    if unknown or "name" not in spec:
        hint = ("; in YAML flow style put a space after each colon: {name: ctrgcn}"
                if any(":" in key for key in unknown) else "")
        raise UsageError(f"{what}: needs 'name' (and optional {', '.join(map(repr, allowed[1:]))}); got keys "
                         f"{sorted(map(str, spec))}{hint}")


def _encoder_keys(encoder: nn.Module, input_key: Optional[str]) -> Tuple[str, ...]:
    if input_key is not None:
        return (str(input_key),)
    return declared_input_keys(encoder)


def mask_encoder_output(out: EncoderOutput, keep: torch.Tensor) -> EncoderOutput:
    """``out`` with the samples where ``keep`` [B] is False zeroed (sequence, pooled, spatial)."""
    def masked(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if x is None:
            return None
        return x * keep.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))

    return EncoderOutput(sequence=masked(out.sequence), pooled=masked(out.pooled), spatial=masked(out.spatial),
                         aux=out.aux)


def sample_modality_keep(batch: int, modalities: int, drop_p: float, device: torch.device) -> torch.Tensor:
    """bool [B, M]: each entry kept with probability 1 - drop_p; a row with nothing kept keeps one at random."""
    keep = torch.rand(batch, modalities, device=device) >= drop_p
    empty = ~keep.any(dim=1)
    if bool(empty.any()):
        chosen = torch.randint(0, modalities, (int(empty.sum()),), device=device)
        keep[empty.nonzero(as_tuple=True)[0], chosen] = True
    return keep


class Recognizer(Encoder):
    """Encoders of any modalities, one fusion, one head.

    Args:
        num_classes: classes of the fused head and of every encoder's own head (0: no heads).
        encoders: {entry name: {"name": registered model, "kwargs": {...}, "input_key": optional batch key}}.
        fusion: {"name": registered fusion, "kwargs": {...}}.
        drop_rate: dropout before the fused head.
        aux_loss_weight: weight of each encoder's own cross-entropy (0 turns them off).
        modality_dropout: per-sample, per-modality drop probability while training.
    Input: {batch key: tensor} (or one tensor when the recognizer reads one key), e.g.
    {"skeleton": [B, M, T, V, C], "depth": [B, 1, T, H, W]}; keys may be missing at inference.
    """

    def __init__(self, num_classes: int, encoders: Mapping[str, Mapping[str, Any]],
                 fusion: Mapping[str, Any], drop_rate: float = 0.5, aux_loss_weight: float = 0.0,
                 modality_dropout: float = 0.0) -> None:
        super().__init__()
        if not encoders:
            raise UsageError("a recognizer needs at least one encoder (model.kwargs.encoders)")
        if not 0.0 <= modality_dropout < 1.0:
            raise UsageError(f"modality_dropout must lie in [0, 1), not {modality_dropout}")
        if int(num_classes) < 0:
            raise UsageError(f"num_classes must be >= 0, not {num_classes}")
        self.num_classes = int(num_classes)
        self.encoders = nn.ModuleDict()
        self.encoder_keys: Dict[str, Tuple[str, ...]] = {}
        for entry, spec in encoders.items():
            _check_part_spec(f"encoder {entry!r}", spec, ("name", "kwargs", "input_key"))
            encoder = create_model(spec["name"], num_classes=self.num_classes, **dict(spec.get("kwargs") or {}))
            check_encoder(encoder)
            self.encoders[entry] = encoder
            self.encoder_keys[entry] = _encoder_keys(encoder, spec.get("input_key"))
        self.dims = {entry: int(encoder.num_features) for entry, encoder in self.encoders.items()}
        _check_part_spec("fusion", fusion, ("name", "kwargs"))
        fusion = dict(fusion)
        self.fusion = create_fusion(fusion["name"], self.dims, **dict(fusion.get("kwargs") or {}))
        self.fusion_name = str(fusion["name"])
        self.late = bool(getattr(self.fusion, "uses_encoder_heads", False))
        self.num_features = int(self.fusion.out_dim)  # width of the fused feature
        self.drop_rate = float(drop_rate)
        self.head = None if self.late or self.num_classes == 0 else self.build_classifier(self.num_classes)
        self.aux_loss_weight = float(aux_loss_weight)
        self.modality_dropout = float(modality_dropout)
        keys = []
        for entry_keys in self.encoder_keys.values():
            keys.extend(k for k in entry_keys if k not in keys)
        self.input_keys: Tuple[str, ...] = tuple(keys)
        # Encoder heads train only through the auxiliary (or late-fusion) losses; DDP must not wait for them otherwise.
        self.ddp_find_unused_parameters = not self.late and self.aux_loss_weight == 0.0

    def build_classifier(self, num_classes: int) -> nn.Sequential:
        """The fused head: dropout, Linear(num_features, num_classes)."""
        return nn.Sequential(nn.Dropout(self.drop_rate), nn.Linear(self.num_features, num_classes))

    def get_classifier(self) -> Optional[nn.ModuleDict]:
        """{"fused": the fused head (unless late fusion), entry: each encoder's head}; None without heads."""
        if self.num_classes == 0:
            return None
        heads = {} if self.head is None else {FUSED_STREAM: self.head}
        for entry, encoder in self.encoders.items():
            head = encoder.get_classifier()
            if head is not None:
                heads[entry] = head
        return nn.ModuleDict(heads)

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh heads for ``num_classes`` outputs: the fused head and every encoder's (0: none)."""
        num_classes = int(num_classes)
        for encoder in self.encoders.values():
            encoder.reset_classifier(num_classes)
        super().reset_classifier(0 if self.late else num_classes)
        self.num_classes = num_classes

    @property
    def stream_loss_weights(self) -> Dict[str, float]:
        """Weights of the cross-entropy of each stream of :meth:`forward_stream_logits`."""
        if self.late:
            return {entry: 1.0 for entry in self.encoders}
        weights = {FUSED_STREAM: 1.0}
        if self.aux_loss_weight > 0:
            weights.update({entry: self.aux_loss_weight for entry in self.encoders})
        return weights

    def _inputs(self, x: Union[torch.Tensor, Mapping[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        if isinstance(x, torch.Tensor):
            if len(self.input_keys) != 1:
                raise TypeError(f"this recognizer reads {self.input_keys}: pass a dict of tensors")
            return {self.input_keys[0]: x}
        return dict(x)

    def forward_features(self, x: Union[torch.Tensor, Mapping[str, torch.Tensor]]) -> RecognizerFeatures:
        """x {batch key: tensor} -> RecognizerFeatures; encoders whose keys are missing are skipped."""
        inputs = self._inputs(x)
        outputs: Dict[str, EncoderOutput] = {}
        for entry, encoder in self.encoders.items():
            keys = self.encoder_keys[entry]
            if not all(k in inputs for k in keys):
                continue
            arg = inputs[keys[0]] if len(keys) == 1 else {k: inputs[k] for k in keys}
            outputs[entry] = encoder.forward_features(arg)
        if not outputs:
            raise KeyError(f"none of the recognizer's inputs {dict(self.encoder_keys)} is in the batch "
                           f"(it holds {sorted(inputs)})")
        like = next(iter(outputs.values())).pooled
        batch = like.shape[0]
        present = {entry: torch.ones(batch, dtype=torch.bool, device=like.device) for entry in outputs}
        fusion_inputs = dict(outputs)
        if self.training and self.modality_dropout > 0 and len(outputs) > 1:
            keep = sample_modality_keep(batch, len(outputs), self.modality_dropout, like.device)
            for column, entry in enumerate(outputs):
                present[entry] = keep[:, column]
                fusion_inputs[entry] = mask_encoder_output(outputs[entry], keep[:, column])
        fused: FusionOutput = self.fusion(fusion_inputs, present)
        aux: Dict[str, torch.Tensor] = {}
        for entry, out in outputs.items():
            for key, value in (out.aux or {}).items():
                if key.startswith("loss_"):
                    aux[f"{key}_{entry}"] = value
        aux.update({key: value for key, value in fused.aux.items() if key.startswith("loss_")})
        return RecognizerFeatures(fused=fused.pooled, modalities=outputs, branches=dict(fused.branches),
                                  present=present, aux=aux)

    def forward_stream_logits(self, feats: RecognizerFeatures) -> Dict[str, torch.Tensor]:
        """{stream: logits [B, C]}: "fused" (unless late fusion) and each encoder's own head when it is trained."""
        if self.num_classes == 0:
            raise RuntimeError("this recognizer has no heads (num_classes=0): call reset_classifier(n) first")
        streams: Dict[str, torch.Tensor] = {}
        if not self.late:
            streams[FUSED_STREAM] = self.head(feats.fused)
        if self.late or self.aux_loss_weight > 0:
            for entry, out in feats.modalities.items():
                streams[entry] = self.encoders[entry].forward_head(out)
        return streams

    def combine_stream_logits(self, feats: RecognizerFeatures, streams: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The prediction [B, C]: the fused head's logits, or the late fusion's weighted sum."""
        if self.late:
            return self.fusion.combine_logits({k: v for k, v in streams.items() if k in self.encoders}, feats.present)
        return streams[FUSED_STREAM]

    def forward_head(self, feats: RecognizerFeatures, pre_logits: bool = False) -> torch.Tensor:
        """feats -> logits [B, C]; the fused feature [B, num_features] with ``pre_logits`` or without heads."""
        if pre_logits or self.num_classes == 0:
            return feats.fused
        if self.late:
            return self.combine_stream_logits(feats, self.forward_stream_logits(feats))
        return self.head(feats.fused)


@register_model("recognizer", modality="multimodal")
def recognizer(num_classes: int = 60, **kwargs: Any) -> Recognizer:
    """Multimodal recognizer: any registered encoders, one fusion (late, mmixer, deformable3d, pose_guided_attention), a head."""
    return Recognizer(num_classes=num_classes, **kwargs)
