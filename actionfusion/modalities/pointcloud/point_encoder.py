"""Point-cloud sequence encoder: per-frame PointNet++ set abstraction + a temporal transformer.

Input: the batch key ``"points"``, float32 [N, T, P, 3] (metres, centred per clip, see
:func:`actionfusion.modalities.pointcloud.point_clip.point_clip_pipeline`).

Design (which of the issue's options, and why):
- **Space**: every frame of every clip ([N T] clouds) goes through one batched PointNet++
  encoder (:class:`PointNetPPFrameEncoder`): two set-abstraction levels (FPS centroids, kNN
  groups, relative xyz, shared MLP, max-pool) and a global level, giving one vector per frame.
  Batched FPS and kNN run as tensor ops over all N*T frames at once.
- **Time**: a small pre-norm transformer encoder over the T frame vectors, with a learned
  temporal position embedding, pooled by a CLS token (default) or the mean.
This is the "PointNet++ per frame + temporal transformer" family (e.g. the frame-level
baselines of PSTNet / P4Transformer papers, and 3DV's temporal split): it factorises space and
time, so the spatial part costs the same as a static-cloud PointNet++ and the temporal part is
tiny for T <= 64. P4Transformer's point 4D convolution (spatio-temporal neighbourhoods across
adjacent frames) models local motion more directly but needs cross-frame grouping of P*T points;
it is not built here. Inter-frame motion still reaches the transformer because the global level
sees absolute (clip-centred) coordinates, so a moving body gives moving frame features.

Sizes. Defaults (256 points, 64/16 centroids, k 16/8, D 256, 2 transformer layers) are sized for
the synthetic 16x256x3 clips on a CPU. At full NTU scale use 512-2048 points per frame with
``num_centroids=(256, 64), neighbours=(32, 16), sa_widths=((64, 64, 128), (128, 128, 256)),
global_widths=(256, 512, 1024)`` and 4 transformer layers (``embed_dim`` follows the last width).
"""

from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..temporal_transformer import POOLINGS, TemporalTransformer
from .set_abstraction import PointNetPPFrameEncoder, frames_to_clouds

__all__ = ["POOLINGS", "PointTransformer", "TemporalTransformer", "point_transformer"]


class PointTransformer(Encoder):
    """Point-cloud clip classifier: batched per-frame PointNet++ -> temporal transformer -> linear head.

    Args:
        num_classes: classifier outputs (0: no classifier; ``forward`` gives the pooled feature).
        num_centroids, neighbours, sa_widths, global_widths, sampling: the frame encoder
            (:class:`PointNetPPFrameEncoder`); the feature width D is ``global_widths[-1]``.
        temporal_depth, heads, mlp_ratio, temporal_drop_rate: the temporal transformer (the last is its
            internal dropout).
        max_frames: longest clip the position table covers.
        pool: ``"cls"`` or ``"mean"``.
        position_embedding: see :class:`TemporalTransformer`.
        drop_rate: dropout before the classifier.
        frame_chunk: the N*T clouds go through the frame encoder this many at a time (None: all at
            once). On a CPU, chunks of 16-32 clouds keep the grouped tensors in cache: a training
            step at batch 8 x 16 frames was 1.6x faster than with one batch of 128 clouds
            (benchmarks/bench_depth_point_encoders.py, 1 thread); on a GPU use None or a large value. In training mode BatchNorm then normalises per chunk (a "ghost batch",
            e.g. 32 clouds x 64 centroids x 16 neighbours = 32k samples); in eval mode the result
            does not depend on it.
    """

    input_keys: tuple[str, ...] = ("points",)
    classifier_name = "fc"

    def __init__(
        self,
        num_classes: int = 60,
        num_centroids: Sequence[int] = (64, 16),
        neighbours: Sequence[int] = (16, 8),
        sa_widths: Sequence[Sequence[int]] = ((32, 32, 64), (64, 64, 128)),
        global_widths: Sequence[int] = (128, 256),
        sampling: str = "fps",
        temporal_depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        temporal_drop_rate: float = 0.1,
        max_frames: int = 64,
        pool: str = "cls",
        position_embedding: bool = True,
        drop_rate: float = 0.0,
        frame_chunk: int | None = 32,
    ) -> None:
        super().__init__()
        if frame_chunk is not None and frame_chunk < 1:
            raise ValueError(f"frame_chunk must be >= 1 or None, got {frame_chunk}")
        self.frame_chunk = frame_chunk
        self.num_classes = num_classes
        self.frame_encoder = PointNetPPFrameEncoder(num_centroids, neighbours, sa_widths, global_widths, sampling)
        self.num_features = self.frame_encoder.out_features
        self.temporal = TemporalTransformer(
            self.num_features, temporal_depth, heads, mlp_ratio, temporal_drop_rate, max_frames, pool, position_embedding
        )
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> nn.Linear:
        """Linear(D, num_classes), PyTorch's default init."""
        return nn.Linear(self.num_features, num_classes)

    def frame_features(self, points: torch.Tensor) -> torch.Tensor:
        """points: float32 [N, T, P, 3] -> per-frame features [N, T, D] (before temporal modelling)."""
        if points.dim() != 4 or points.shape[-1] != 3:
            raise ValueError(f"point clips must be [N, T, P, 3], got {tuple(points.shape)}")
        clouds = frames_to_clouds(points)  # [(N T), P, 3]
        chunks = clouds.split(self.frame_chunk) if self.frame_chunk else (clouds,)
        feats = torch.cat([self.frame_encoder(chunk) for chunk in chunks])  # [(N T), D]
        return rearrange(feats, "(n t) d -> n t d", t=points.shape[1])

    def forward_features(self, points: torch.Tensor) -> EncoderOutput:
        """points: [N, T, P, 3] -> EncoderOutput(sequence [N, T, D], pooled [N, D], spatial None).

        ``aux["frame_features"]`` holds the per-frame PointNet++ features [N, T, D].
        """
        frames = self.frame_features(points)
        sequence, pooled = self.temporal(frames)
        return EncoderOutput(sequence=sequence, pooled=pooled, aux={"frame_features": frames})

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """feats.pooled [N, D] -> logits [N, num_classes]; pooled itself with ``pre_logits`` or no fc."""
        if pre_logits or self.fc is None:
            return feats.pooled
        return self.fc(self.drop(feats.pooled))


@register_model("point_transformer", modality="points")
def point_transformer(num_classes: int = 60, **kwargs: object) -> PointTransformer:
    """Point clips [N, T, P, 3]: per-frame PointNet++ set abstraction, temporal transformer, CLS pooling."""
    return PointTransformer(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
