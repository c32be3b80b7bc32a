"""MAMP pretraining: masked motion prediction (Mao et al., ICCV 2023; maoyunyao/MAMP).

Each body of a clip ``[B, M, T, V, C]`` is one sequence (zero-padded bodies too, as upstream).
Its (segment, joint) tokens are masked motion-aware (``mamp_masking``), the model's encoder
encodes the visible ones, :class:`MAMPDecoder` predicts every token's patch vector, and the loss is
the MSE against the motion target ``x[t + stride] - x[t]`` (patchified, each token normalised over
its 12 values), averaged over the hidden tokens only::

    objective = create_objective("mamp", decoder_depth=5, tau=0.75)   # NTU120
    out = objective(create_model("mamp", num_classes=0), batch)        # out.losses["mse"]

The mask is drawn from torch's global random stream (no generator), so an engine that reseeds
it per epoch resumes exactly.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from einops import rearrange
from torch import nn

from ..modalities.skeleton.mamp import patchify_skeleton
from ..modalities.skeleton.mamp_masking import TokenMask, motion_aware_masking
from .base import Objective, ObjectiveOutput, register_objective
from .mamp_decoder import MAMPDecoder

NORM_TARGET_EPS = 1e-6  # upstream forward_loss: (v - mean) / (var + 1e-6) ** 0.5


def motion_target(x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Upstream's ``extract_motion``: ``x[t + stride] - x[t]``, the last ``stride`` frames zero.

    Args:
        x: [B, T, V, C] skeletons, T > stride >= 1.

    Returns:
        [B, T, V, C] motion, same dtype.
    """
    if x.ndim != 4:
        raise ValueError(f"expected [B, T, V, C], got shape {tuple(x.shape)}")
    if not 1 <= stride < x.shape[1]:
        raise ValueError(f"motion stride must be in [1, T={x.shape[1]}), got {stride}")
    motion = torch.zeros_like(x)
    motion[:, :-stride] = x[:, stride:] - x[:, :-stride]
    return motion


def normalise_tokens(tokens: torch.Tensor, eps: float = NORM_TARGET_EPS) -> torch.Tensor:
    """Each token over its last dimension: ``(v - mean) / sqrt(var + eps)``.

    ``var`` is the unbiased variance (divisor P - 1), as upstream's ``target.var(dim=-1)``.

    Args:
        tokens: [..., P] patch vectors, P >= 2.

    Returns:
        [..., P] normalised tokens.
    """
    mean = tokens.mean(dim=-1, keepdim=True)
    var = tokens.var(dim=-1, keepdim=True)
    return (tokens - mean) / (var + eps).sqrt()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over each token's values, averaged over the hidden tokens only.

    Args:
        pred: [B, L, P] predictions.
        target: [B, L, P] targets.
        mask: [B, L], 1 where a token is hidden (counted), 0 where it is visible (ignored).

    Returns:
        scalar: ``sum(mask * mean_P (pred - target)^2) / sum(mask)``.
    """
    if pred.shape != target.shape or pred.shape[:2] != mask.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [B, L, P], mask [B, L] "
            f"(got {tuple(mask.shape)})"
        )
    per_token = (pred - target).pow(2).mean(dim=-1)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum()


@register_objective("mamp")
class MAMPPretraining(Objective):
    """Masked motion prediction: MSE on the normalised motion of motion-aware masked tokens.

    Owns the :class:`MAMPDecoder` (``self.decoder``; its keys are upstream's with a ``decoder.``
    prefix). The model is ``create_model("mamp", ...)`` (its ``encoder`` is used) or a bare
    ``MAMPEncoder``; its sizes must match ``num_frames``, ``num_joints``, ``in_channels``,
    ``segment_frames`` and ``encoder_dim`` (checked at the first call).

    Args:
        num_frames, num_joints, in_channels, segment_frames: the clip and token sizes (T, V, C, frames
            per token); T' = num_frames / segment_frames segments.
        encoder_dim: the encoder's width.
        decoder_dim, decoder_depth, decoder_heads, mlp_ratio: the decoder (upstream: 256, 3 for NTU60
            or 5 for NTU120 / PKU, 8, 4).
        mask_ratio: fraction of tokens hidden (0.9).
        tau: motion-aware masking temperature (0.8 NTU60 / PKU, 0.75 NTU120); 0 = uniform random.
        motion_stride: frames between the two poses of the motion target (1).
        norm_target: normalise each target token over its values (upstream ``norm_skes_loss: True``).
        official_floor: keep upstream's ``int(L * (1 - ratio))`` tokens (74 of 750 at 0.9, not 75).
    """

    needs_labels = False

    def __init__(
        self,
        num_frames: int = 120,
        num_joints: int = 25,
        in_channels: int = 3,
        segment_frames: int = 4,
        encoder_dim: int = 256,
        decoder_dim: int = 256,
        decoder_depth: int = 3,
        decoder_heads: int = 8,
        mlp_ratio: float = 4.0,
        mask_ratio: float = 0.9,
        tau: float = 0.8,
        motion_stride: int = 1,
        norm_target: bool = True,
        official_floor: bool = False,
    ) -> None:
        super().__init__()
        if num_frames % segment_frames != 0:
            raise ValueError(f"num_frames {num_frames} is not divisible by segment_frames {segment_frames}")
        if not 1 <= motion_stride < num_frames:
            raise ValueError(f"motion_stride must be in [1, num_frames={num_frames}), got {motion_stride}")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.segment_frames = segment_frames
        self.encoder_dim = encoder_dim
        self.mask_ratio = mask_ratio
        self.tau = tau
        self.motion_stride = motion_stride
        self.norm_target = norm_target
        self.official_floor = official_floor
        self.decoder = MAMPDecoder(
            encoder_dim=encoder_dim,
            decoder_dim=decoder_dim,
            depth=decoder_depth,
            num_heads=decoder_heads,
            mlp_ratio=mlp_ratio,
            num_segments=num_frames // segment_frames,
            num_joints=num_joints,
            patch_dim=segment_frames * in_channels,
        )
        self._model_checked = False

    def encoder_of(self, model: nn.Module) -> nn.Module:
        """The encoder that ``model`` holds (``model.encoder``), or ``model`` itself if it is one;
        raises ValueError (one line) the first time if its sizes differ from the objective's."""
        encoder = getattr(model, "encoder", model)
        if not hasattr(encoder, "forward_tokens"):
            raise TypeError(f"the mamp objective needs a MAMP model (an encoder with forward_tokens), "
                            f"got {type(model).__name__}")
        if not self._model_checked:
            for name, ours, theirs in (
                ("num_frames", self.num_frames, getattr(encoder, "num_frames", None)),
                ("num_joints", self.num_joints, getattr(encoder, "num_joints", None)),
                ("in_channels", self.in_channels, getattr(encoder, "in_channels", None)),
                ("segment_frames", self.segment_frames, getattr(encoder, "segment_frames", None)),
                ("encoder_dim", self.encoder_dim, getattr(encoder, "embed_dim", None)),
            ):
                if ours != theirs:
                    raise ValueError(f"mamp objective: {name} is {ours} but the model's encoder has {theirs}")
            self._model_checked = True
        return encoder

    def bodies(self, skeleton: torch.Tensor) -> torch.Tensor:
        """[B, M, T, V, C] clips -> [B * M, T, V, C] bodies, every body (zero padding too)."""
        if skeleton.ndim != 5:
            raise ValueError(f"the mamp objective expects skeleton [B, M, T, V, C], got {tuple(skeleton.shape)}")
        return rearrange(skeleton, "b m t v c -> (b m) t v c")

    def draw_mask(self, bodies: torch.Tensor) -> TokenMask:
        """Motion-aware mask of each body's tokens (torch's global random stream).

        bodies: [N, T, V, C] -> TokenMask with keep_index [N, K], mask / restore_index [N, L].
        """
        patches = patchify_skeleton(bodies, self.segment_frames)
        return motion_aware_masking(patches, self.mask_ratio, self.tau, official_floor=self.official_floor)

    def target(self, bodies: torch.Tensor) -> torch.Tensor:
        """The motion target of each token: bodies [N, T, V, C] -> [N, L, segment_frames * C]."""
        tokens = rearrange(patchify_skeleton(motion_target(bodies, self.motion_stride), self.segment_frames),
                           "n t v p -> n (t v) p")
        return normalise_tokens(tokens) if self.norm_target else tokens

    def predict(self, encoder: nn.Module, bodies: torch.Tensor, mask: TokenMask) -> torch.Tensor:
        """Encode the visible tokens and decode all: bodies [N, T, V, C] -> [N, L, segment_frames * C]."""
        latent = encoder.forward_tokens(bodies, mask.keep_index)
        return self.decoder(latent, mask.restore_index)

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["skeleton"] [B, M, T, V, C] -> ObjectiveOutput(loss = losses["mse"],
        metrics["masked_fraction"], batch_size = B)."""
        encoder = self.encoder_of(model)
        skeleton = batch["skeleton"].to(self.device_of(model), non_blocking=True)
        bodies = self.bodies(skeleton)
        mask = self.draw_mask(bodies)
        pred = self.predict(encoder, bodies, mask)
        dtype = torch.promote_types(pred.dtype, torch.float32)  # the loss in float32 at least (AMP)
        loss = masked_mse(pred.to(dtype), self.target(bodies.to(dtype)), mask.mask)
        return ObjectiveOutput(
            loss=loss,
            losses={"mse": loss.detach()},
            metrics={"masked_fraction": mask.mask.mean()},
            batch_size=int(skeleton.shape[0]),
        )
