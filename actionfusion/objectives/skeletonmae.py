"""SkeletonMAE pretraining: masked joint reconstruction on skeleton graphs (Yan et al., ICCV 2023),
in the GraphMAE way (Hou et al., KDD 2022).

Every body of a clip ``[B, M, T, V, C]`` that is not all zeros (zero padding is left out) is cut
into graphs (one per frame, or per ``segment_frames`` frames; :class:`SkeletonMAEEncoder`). In
every graph, part-aware joint masking (:mod:`.skeletonmae_masking`) hides ``mask_ratio`` of the
joints: their input features are replaced by a learnable [MASK] token, and optionally a share of
the skeleton edges is dropped from the encoder's graph. The encoder gives H; the decoder
(:class:`SkeletonMAEDecoder`) maps H through a bias-free Linear, re-masks the hidden joints (their
rows set to zero, GraphMAE's re-mask), and reconstructs every joint's input feature with one GIN
layer and an MLP. The loss is GraphMAE's scaled cosine error on the hidden joints only::

    SCE = mean over hidden joints of (1 - cos(x_v, z_v)) ** gamma

(joints whose target is the zero vector, i.e. missing, are left out too)::

    objective = create_objective("skeletonmae", layout="ntu25", mask_ratio=0.5)
    out = objective(create_model("skeletonmae", num_classes=0), batch)      # out.losses["sce"]

What the paper gives: [MASK] tokens on masked joints, masking guided by the body-part partition,
joint and edge masking, a decoder of one GIN layer and an MLP. Reconstructed (all options): the
masking ratio (0.5), the part sampling rule (``parts``), the edge masking rate (0), the loss
(``sce`` with gamma 2, GraphMAE's default; ``mse`` as an option), the re-mask, the decoder widths
leaving zero-padded bodies out of the loss, and the ``bone`` target option.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..modalities.skeleton.body_parts import part_of_joint
from ..modalities.skeleton.gin import GINConv
from ..modalities.skeleton.layouts import get_layout, layout_graph
from .base import Objective, ObjectiveOutput, register_objective
from .skeletonmae_masking import MASK_RULES, edge_keep_mask, joint_mask, masked_adjacency

RECONSTRUCTION_LOSSES = ("sce", "mse")
RECONSTRUCTION_TARGETS = ("joint", "bone")


def scaled_cosine_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                        gamma: float = 2.0) -> torch.Tensor:
    """GraphMAE's SCE: weighted mean of ``(1 - cos(pred_v, target_v)) ** gamma``.

    Args:
        pred, target: [..., P] reconstructions and targets.
        weight: [...] 1 for the joints that count (the hidden ones), 0 elsewhere.
        gamma: the scaling exponent (>= 1).

    Returns:
        scalar; zero when no joint counts.
    """
    if pred.shape != target.shape or pred.shape[:-1] != weight.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [..., P], "
                         f"weight [...] (got {tuple(weight.shape)})")
    cos = (F.normalize(pred, dim=-1) * F.normalize(target, dim=-1)).sum(dim=-1)
    error = (1.0 - cos).pow(gamma)
    weight = weight.to(error.dtype)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)


def masked_mean_squared_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean over joints of the mean squared error over each joint's P values."""
    error = (pred - target).pow(2).mean(dim=-1)
    weight = weight.to(error.dtype)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)


class SkeletonMAEDecoder(nn.Module):
    """Linear(D, D, no bias) -> re-mask -> GIN(D, D) -> ReLU -> MLP Linear(D, H) -> ReLU -> Linear(H, P).

    ``D^2 + GIN(D, D) + (D + 1) H + (H + 1) P`` parameters, ``GIN(D, D) = 2 (D + 1) D + 2D``.

    Args:
        encoder_dim: D.
        out_features: P, the joint feature to reconstruct (segment_frames * C).
        adjacency: [V, V] the layout's graph.
        hidden_dim: H (default D).
        remask: zero the hidden joints' rows before the GIN layer.
        aggregation: the GIN neighbour sum.
    """

    def __init__(self, encoder_dim: int, out_features: int, adjacency: Any, hidden_dim: Optional[int] = None,
                 remask: bool = True, aggregation: str = "dense") -> None:
        super().__init__()
        hidden = int(hidden_dim or encoder_dim)
        self.remask = remask
        self.encoder_to_decoder = nn.Linear(encoder_dim, encoder_dim, bias=False)
        self.gin = GINConv(encoder_dim, encoder_dim, adjacency, aggregation=aggregation)
        self.act = nn.ReLU(inplace=True)
        self.mlp = nn.Sequential(nn.Linear(encoder_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden H [B, T', V, D], mask bool [B, T', V] -> reconstruction [B, T', V, P]."""
        h = self.encoder_to_decoder(hidden)
        if self.remask:
            h = h.masked_fill(mask.unsqueeze(-1), 0.0)
        return self.mlp(self.act(self.gin(h)))


@register_objective("skeletonmae")
class SkeletonMAEPretraining(Objective):
    """Masked joint reconstruction with part-aware masking and the scaled cosine error.

    Owns the [MASK] token (``mask_token`` [P]) and the decoder. The model is
    ``create_model("skeletonmae", num_classes=0, ...)`` (its ``encoder``) or a bare
    ``SkeletonMAEEncoder``; its layout, channels, segment and width must match (checked at the
    first call).

    Args:
        layout: joint layout with a body-part partition (``ntu25``, ``coco17``).
        in_channels, segment_frames: C and frames per graph (P = segment_frames * C).
        encoder_dim: D.
        decoder_hidden: the decoder MLP's hidden width (default D).
        mask_ratio: share of every graph's joints hidden (exactly ``floor(ratio V + 1/2)``).
        mask_rule: ``parts``, ``stratified`` or ``uniform`` (:mod:`.skeletonmae_masking`).
        edge_mask_rate: share of every graph's edges dropped from the encoder's graph.
        loss: ``sce`` (scaled cosine error) or ``mse``.
        gamma: SCE's exponent.
        target: what a hidden joint's reconstruction is compared with: ``joint``, its input feature
            X (the paper's), or ``bone``, its position minus its parent's in the layout's tree (every
            frame of the segment). The cosine error ignores length, so with centred coordinates the
            ``joint`` target of joints near the origin (the spine) is a direction made of sensor
            noise; a bone's direction is the pose itself. The root joint has no bone and no loss.
        remask: GraphMAE's re-mask before the decoder.
        aggregation: the decoder GIN's neighbour sum.
    """

    needs_labels = False

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        segment_frames: int = 1,
        encoder_dim: int = 128,
        decoder_hidden: Optional[int] = None,
        mask_ratio: float = 0.5,
        mask_rule: str = "parts",
        edge_mask_rate: float = 0.0,
        loss: str = "sce",
        gamma: float = 2.0,
        remask: bool = True,
        aggregation: str = "dense",
        target: str = "joint",
    ) -> None:
        super().__init__()
        if target not in RECONSTRUCTION_TARGETS:
            raise ValueError(f"target must be one of {RECONSTRUCTION_TARGETS}, not {target!r}")
        if mask_rule not in MASK_RULES:
            raise ValueError(f"mask_rule must be one of {MASK_RULES}, not {mask_rule!r}")
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"loss must be one of {RECONSTRUCTION_LOSSES}, not {loss!r}")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if not 0.0 <= edge_mask_rate < 1.0:
            raise ValueError(f"edge_mask_rate must be in [0, 1), got {edge_mask_rate}")
        self.layout = get_layout(layout).name
        self.num_joints = get_layout(layout).num_joints
        self.in_channels = in_channels
        self.segment_frames = segment_frames
        self.encoder_dim = encoder_dim
        self.mask_ratio = mask_ratio
        self.mask_rule = mask_rule
        self.edge_mask_rate = edge_mask_rate
        self.loss_name = loss
        self.gamma = gamma
        self.target_kind = target
        node_features = segment_frames * in_channels
        graph = layout_graph(self.layout)
        self.register_buffer("part_of_joint", torch.tensor(part_of_joint(self.layout)), persistent=False)
        self.register_buffer("edges", torch.tensor(graph.edges, dtype=torch.int64), persistent=False)
        self.register_buffer("parents", torch.tensor(get_layout(layout).parents, dtype=torch.int64), persistent=False)
        self.mask_token = nn.Parameter(torch.zeros(node_features))
        self.decoder = SkeletonMAEDecoder(encoder_dim, node_features, graph.adjacency(), decoder_hidden, remask,
                                          aggregation)
        self._model_checked = False

    def encoder_of(self, model: nn.Module) -> nn.Module:
        """``model.encoder`` (or ``model`` itself if it is the encoder), checked against the objective once."""
        encoder = getattr(model, "encoder", model)
        if not hasattr(encoder, "forward_nodes"):
            raise TypeError(f"the skeletonmae objective needs a SkeletonMAE model (an encoder with forward_nodes), "
                            f"got {type(model).__name__}")
        if not self._model_checked:
            for name, ours, theirs in (
                ("layout", self.layout, getattr(encoder, "layout", None)),
                ("in_channels", self.in_channels, getattr(encoder, "in_channels", None)),
                ("segment_frames", self.segment_frames, getattr(encoder, "segment_frames", None)),
                ("encoder_dim", self.encoder_dim, getattr(encoder, "embed_dim", None)),
            ):
                if ours != theirs:
                    raise ValueError(f"skeletonmae objective: {name} is {ours} but the model's encoder has {theirs}")
            self._model_checked = True
        return encoder

    @staticmethod
    def present_bodies(skeleton: torch.Tensor) -> torch.Tensor:
        """[B, M, T, V, C] -> [B * M, T, V, C], the bodies that are not all zeros (all of them if none is)."""
        if skeleton.ndim != 5:
            raise ValueError(f"the skeletonmae objective expects skeleton [B, M, T, V, C], got {tuple(skeleton.shape)}")
        bodies = rearrange(skeleton, "b m t v c -> (b m) t v c")
        present = bodies.flatten(1).abs().amax(dim=1) > 0
        return bodies[present] if bool(present.any()) else bodies

    def draw_masks(self, nodes: torch.Tensor) -> "tuple[torch.Tensor, Optional[torch.Tensor]]":
        """nodes [G, T', V, P] -> (joint mask bool [G, T', V], encoder adjacency [G, T', V, V] or None)."""
        shape = nodes.shape[:2]
        mask = joint_mask(shape, self.part_of_joint, self.mask_ratio, self.mask_rule)
        adjacency = None
        if self.edge_mask_rate > 0:
            keep = edge_keep_mask(shape, self.edges.shape[0], self.edge_mask_rate, nodes.device)
            adjacency = masked_adjacency(self.edges, keep, self.num_joints).to(nodes.dtype)
        return mask, adjacency

    def reconstruction_target(self, nodes: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor]":
        """nodes [G, T', V, P] -> (target [G, T', V, P], valid bool [G, T', V]).

        A joint whose input is the zero vector is missing: no target. With ``target="bone"`` the
        joint and its parent must both be present, and the root has no target.
        """
        present = nodes.abs().amax(dim=-1) > 0
        if self.target_kind == "joint":
            return nodes, present
        has_parent = self.parents >= 0
        parent = self.parents.clamp(min=0)
        bones = (nodes - nodes.index_select(2, parent)) * has_parent.to(nodes.dtype).unsqueeze(-1)
        return bones, present & present.index_select(2, parent) & has_parent

    def reconstruction_loss(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                            valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The configured loss over the hidden joints that have a target (``valid``; default: the
        joints whose target is not the zero vector)."""
        weight = mask & ((target.abs().amax(dim=-1) > 0) if valid is None else valid)
        if self.loss_name == "sce":
            return scaled_cosine_error(pred, target, weight, self.gamma)
        return masked_mean_squared_error(pred, target, weight)

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["skeleton"] [B, M, T, V, C] -> ObjectiveOutput(loss = losses[loss name],
        metrics["masked_fraction"], batch_size = B)."""
        encoder = self.encoder_of(model)
        skeleton = batch["skeleton"].to(self.device_of(model), non_blocking=True)
        nodes = encoder.nodes(self.present_bodies(skeleton))
        mask, adjacency = self.draw_masks(nodes)
        corrupted = torch.where(mask.unsqueeze(-1), self.mask_token.to(nodes.dtype), nodes)
        hidden = encoder.forward_nodes(corrupted, adjacency)
        pred = self.decoder(hidden, mask)
        dtype = torch.promote_types(pred.dtype, torch.float32)  # the loss in float32 at least (AMP)
        target, valid = self.reconstruction_target(nodes.to(dtype))
        loss = self.reconstruction_loss(pred.to(dtype), target, mask, valid)
        return ObjectiveOutput(
            loss=loss,
            losses={self.loss_name: loss.detach()},
            metrics={"masked_fraction": mask.float().mean()},
            batch_size=int(skeleton.shape[0]),
        )
