"""Hyper-GCN: multi-head graph convolution with virtual joints and adaptive hypergraphs.

Follows shared/specs/skeleton-gcn.md, checked against 6UOOON9/Hyper-GCN@cefe70b
(``model/hypergcn_base.py``, ``model/hypergcn_large.py``, ``graph/tools.py``, ``main.py``):

- joint embedding ``Linear(C -> 128)`` + learnable positional embedding [V, 128] -> tanh ->
  BatchNorm1d over M*V*128;
- nine blocks ``ReLU(MS-TCN(HyperGraphConv(x)) + residual(x))``, widths 128 x3, 256 (stride 2)
  x3, 256 (stride 2) x3 ("hypergcn"; "hypergcn_large": the last three 512); block 3 takes
  the sum of blocks 1 and 2, block 6 of 4 and 5, block 9 of 7 and 8;
- each graph convolution appends 3 learnable virtual joints (V' = 28) and aggregates with
  ``rownorm(E * A_prior) + ReLU(alpha) * G`` per head (K = 8), G the adaptive hypergraph of
  :mod:`.hypergraph`;
- the divergence loss (weight 1) pushes each layer's virtual joints apart; it is returned
  in ``EncoderOutput.aux["loss_divergence"]`` with its weight applied.

Unlike the release (``.cuda(x.get_device())``), everything follows the input's device.
The MS-TCN here is private to the Hyper-GCN/PSUMNet pair (``padding_mode`` picks
Hyper-GCN's replicate or CTR-GCN's zero padding).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from .gcn_blocks import PointwiseConv2d, ctrgcn_classifier, run_branches
from .graphs import SkeletonGraph
from .hypergraph import HYPEREDGE_K, AdaptiveHypergraph
from .layouts import layout_graph

# Hyper-GCN constants (6UOOON9/Hyper-GCN@cefe70b): embedding width, heads, virtual joints,
# block widths/strides and the blocks whose input adds the two previous outputs.
VIRTUAL_INITS: tuple[str, ...] = ("independent", "upstream")
EMBED_DIM = 128
NUM_HEADS = 8
NUM_VIRTUAL_JOINTS = 3
BASE_WIDTHS = (128, 128, 128, 256, 256, 256, 256, 256, 256)
LARGE_WIDTHS = (128, 128, 128, 256, 256, 256, 512, 512, 512)
BLOCK_STRIDES = (1, 1, 1, 2, 1, 1, 2, 1, 1)
SKIP_INTO_BLOCKS = (2, 5, 8)  # 0-based: block i's input is out(i - 1) + out(i - 2)
DIVERGENCE_WEIGHT = 1.0


def _init_conv(conv: nn.Conv2d | nn.Conv1d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """1x1 conv (temporal stride) + BN: the residual projection, [B, C_in, T, V] -> [B, C_out, T/s, V]."""
    conv = PointwiseConv2d(in_channels, out_channels, stride=(stride, 1))
    _init_conv(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class MultiScaleTemporalConv(nn.Module):
    """CTR-GCN's MS-TCN: dilated 5x1 branches, a max-pool branch and a strided 1x1 branch.

    Each of the ``len(dilations) + 2`` branches has C_out / branches channels; the
    outputs are concatenated. No internal residual (the blocks add their own).

    Args:
        in_channels, out_channels: C_in, C_out (C_out divisible by the branch count).
        stride: temporal stride.
        kernel_size: temporal kernel of the dilated branches.
        dilations: one dilated branch per entry.
        padding_mode: ``"zeros"`` (CTR-GCN, PSUMNet) or ``"replicate"`` (Hyper-GCN).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_size: int = 5,
        dilations: Sequence[int] = (1, 2),
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels % num_branches:
            raise ValueError(f"out_channels={out_channels} must be a multiple of {num_branches} branches")
        width = out_channels // num_branches
        branches: list[nn.Module] = []
        for dilation in dilations:
            pad = (kernel_size - 1) * dilation // 2
            temporal = nn.Conv2d(width, width, (kernel_size, 1), stride=(stride, 1), padding=(pad, 0),
                                 dilation=(dilation, 1), padding_mode=padding_mode)
            branches.append(nn.Sequential(
                nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                temporal, nn.BatchNorm2d(width),
            ))
        branches.append(nn.Sequential(
            nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)), nn.BatchNorm2d(width),
        ))
        branches.append(nn.Sequential(nn.Conv2d(in_channels, width, 1, stride=(stride, 1)), nn.BatchNorm2d(width)))
        self.branches = nn.ModuleList(branches)
        for module in self.modules():  # upstream's weights_init
            if isinstance(module, nn.Conv2d):
                _init_conv(module)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, T, V] -> [B, C_out, T / stride, V]."""
        return torch.cat(run_branches(x, self.branches), dim=1)


def virtual_prior_graph(graph: SkeletonGraph, num_virtual: int, num_heads: int) -> np.ndarray:
    """float32 [K, V', V']: I + In + Out (unnormalised) with virtual vertices, per head.

    Each virtual vertex (indices V..V'-1) has a self-loop and is linked both ways to every
    real joint (not to the other virtual vertices), as ``get_virtual_graph_ensemble``.
    """
    v = graph.num_joints
    size = v + num_virtual
    prior = np.eye(size, dtype=np.float32)
    for child, parent in graph.edges:
        prior[parent, child] += 1.0  # In (edge child -> parent; A[j, i] for i -> j)
        prior[child, parent] += 1.0  # Out
    prior[:v, v:] += 1.0
    prior[v:, :v] += 1.0
    return np.repeat(prior[None], num_heads, axis=0)


def virtual_joint_divergence(virtual_joints: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean off-diagonal ReLU(cosine similarity) between virtual joints, averaged over layers.

    Args:
        virtual_joints: per layer a [W, C_l] tensor (W virtual joints, W >= 2).

    Returns:
        scalar: 0 when every layer's virtual joints are pairwise orthogonal (or opposed),
        1 when they are identical.
    """
    losses = []
    for joints in virtual_joints:
        w = joints.shape[0]
        unit = joints / (joints.norm(dim=-1, keepdim=True) + 1e-8)
        cosine = torch.relu(unit @ unit.T)
        off_diagonal = ~torch.eye(w, dtype=torch.bool, device=joints.device)
        losses.append(cosine[off_diagonal].mean())
    return torch.stack(losses).mean()


class HyperGraphConv(nn.Module):
    """Multi-head graph convolution over joints + virtual joints with an adaptive hypergraph.

    Args:
        in_channels, out_channels: C_in, C_out (both divisible by ``num_heads``).
        prior: float32 [K, V', V'] prior graph from :func:`virtual_prior_graph`.
        num_virtual: virtual joints appended (V' = V + num_virtual).
        hyperedge_k: hypergraph neighbourhood size(s).
        virtual_init: ``"independent"`` (default) draws each virtual joint on its own;
            ``"upstream"`` repeats one random vector as the release does. The prior graph links
            every virtual joint to the same vertices, so identical virtual joints receive identical
            gradients and stay identical: the divergence loss then sits at 1 with zero gradient
            (measured: 1.0000 in every epoch of a synthetic run). Independent draws let it act.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prior: np.ndarray,
        num_virtual: int = NUM_VIRTUAL_JOINTS,
        hyperedge_k: int | Sequence[int] = HYPEREDGE_K,
        virtual_init: str = "independent",
    ) -> None:
        super().__init__()
        num_heads = prior.shape[0]
        if out_channels % num_heads:
            raise ValueError(f"out_channels={out_channels} must be divisible by {num_heads} heads")
        num_vertices = prior.shape[-1]
        ks = (hyperedge_k,) if isinstance(hyperedge_k, int) else tuple(hyperedge_k)
        if any(not 1 <= k <= num_vertices for k in ks):
            raise ValueError(f"hyperedge_k={hyperedge_k} must lie in 1..{num_vertices} (joints + virtual joints)")
        self.num_heads = num_heads
        self.num_virtual = num_virtual
        if virtual_init not in VIRTUAL_INITS:
            raise ValueError(f"virtual_init must be one of {VIRTUAL_INITS}, not {virtual_init!r}")
        if virtual_init == "upstream":  # one random vector repeated: the virtual joints start identical
            self.virtual_joints = nn.Parameter(torch.randn(1, in_channels).repeat(num_virtual, 1))
        else:
            self.virtual_joints = nn.Parameter(torch.randn(num_virtual, in_channels))
        self.register_buffer("prior_graph", torch.tensor(np.asarray(prior), dtype=torch.float32))  # a copy per block
        self.edge_importance = nn.Parameter(torch.ones(prior.shape))
        self.hypergraph = AdaptiveHypergraph(in_channels, num_heads, hyperedge_k)
        self.alpha = nn.Parameter(torch.ones(1))
        self.head_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, groups=num_heads)
        _init_conv(self.head_conv)
        self.down = _conv_bn(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, 1e-6)
        nn.init.zeros_(self.bn.bias)

    def prior_operator(self) -> torch.Tensor:
        """[K, V', V'] rownorm(E * A_prior)."""
        weighted = self.edge_importance * self.prior_graph
        return weighted / (weighted.abs().sum(dim=-1, keepdim=True) + 1e-8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, T, V] -> [B, C_out, T, V] (virtual joints used, then cropped).

        Computes the release's ``crop_V(einsum('bkuv,bkctv->bkctu', op, head_conv([x, virtual])))``
        in another order, the same function to float rounding: per (clip, head), the graph first
        and only for the V real target joints, ``z = x_k @ op[:V, :V]^T``, then the head's channel
        mix ``W_k z`` as one batched matmul; what the virtual joints and the bias contribute is
        constant over T and added once, ``W_k (vj_k^T op[:V, V:]^T) + b_k * rowsum(op[:V])``. No
        ``[B, C, T, V']`` concatenation and no grouped convolution: at 32 person-clips x 256
        channels x 32 frames (2 threads, forward and backward) the heads' channel mix took 12-13 ms
        as a batched matmul against 27-45 ms as PyTorch's grouped CPU convolution, which was slower
        than a dense one of 8x its products (one microbenchmark); the whole training step went
        from 0.97-1.05x the official code's to 0.78-0.79x (``bench_skeleton_train_step.py``).
        """
        b, c_in, t, v = x.shape
        k = self.num_heads
        vj = self.virtual_joints  # [W, C_in]
        # mean over T as sum / T: its backward is a broadcast view, not a [B, C, T, V] quotient
        pooled = torch.cat([x.sum(dim=2) / t, vj.t().unsqueeze(0).expand(b, -1, -1)], dim=-1)  # [B, C_in, V']
        operator = self.prior_operator().unsqueeze(0) + torch.relu(self.alpha) * self.hypergraph(pooled)
        operator = operator[:, :, :v]  # [B, K, V, V']: only the real joints are kept as targets
        ci = c_in // k
        z = torch.matmul(x.reshape(b, k, ci * t, v), operator[..., :v].transpose(-1, -2))  # [B, K, ci T, V]
        weight = self.head_conv.weight.view(k, -1, ci)  # [K, co, ci]
        co = weight.shape[1]
        y = torch.matmul(weight, z.view(b, k, ci, t * v)).view(b, k, co, t, v)
        virtual = torch.einsum("wki,bkuw->bkiu", vj.view(-1, k, ci), operator[..., v:])  # [B, K, ci, V]
        constant = torch.matmul(weight, virtual) + self.head_conv.bias.view(1, k, co, 1) * operator.sum(-1)[:, :, None]
        y = (y + constant.unsqueeze(3)).view(b, k * co, t, v)  # [B, C_out, T, V]
        return torch.relu_(self.bn(y) + self.down(x))  # a fresh sum: in place is safe


class HyperGCNBlock(nn.Module):
    """``ReLU(MS-TCN(HyperGraphConv(x)) + residual(x))``, [B, C_in, T, V] -> [B, C_out, T/s, V]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        prior: np.ndarray,
        stride: int = 1,
        num_virtual: int = NUM_VIRTUAL_JOINTS,
        hyperedge_k: int | Sequence[int] = HYPEREDGE_K,
        virtual_init: str = "independent",
    ) -> None:
        super().__init__()
        self.gcn = HyperGraphConv(in_channels, out_channels, prior, num_virtual, hyperedge_k, virtual_init)
        self.tcn = MultiScaleTemporalConv(out_channels, out_channels, stride, padding_mode="replicate")
        self.residual: nn.Module = (nn.Identity() if in_channels == out_channels and stride == 1
                                    else _conv_bn(in_channels, out_channels, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, T, V] -> [B, C_out, T / stride, V]."""
        return torch.relu_(self.tcn(self.gcn(x)) + self.residual(x))


class HyperGCN(Encoder):
    """Hyper-GCN encoder and classifier.

    Reads batch key "skeleton" [N, M, T, V, C].

    Args:
        num_classes: output classes (0: no classifier; ``forward`` gives the pooled feature).
        in_channels: C of the input joints (3 for one stream: joint, bone or motion).
        num_persons: M, fixed by the input BatchNorm over M*V*128.
        num_joints: V; None takes the layout's (a number must agree with it).
        widths: the nine block widths (``BASE_WIDTHS`` or ``LARGE_WIDTHS``).
        num_virtual: virtual joints per layer.
        hyperedge_k: neighbourhood size; a list builds multi-scale hypergraphs (averaged),
            the arXiv v1 idea, not in the released code.
        drop_rate: dropout before the classifier.
        divergence_weight: weight of ``aux["loss_divergence"]`` (0 leaves it out).
        virtual_init: ``"independent"`` or the release's ``"upstream"`` (see :class:`HyperGraphConv`).
        layout: the joint graph (:func:`~.layouts.layout_graph`): ``"ntu25"`` with hand-tip variant B
            (the release's NTU graph), ``"nw_ucla20"`` (the release's ``graph/ucla.py``: the same 19
            edges), ``"coco17"``, ``"blazepose33"``.
    """

    input_keys = ("skeleton",)
    classifier_name = "fc"

    def __init__(
        self,
        num_classes: int = 60,
        in_channels: int = 3,
        num_persons: int = 2,
        num_joints: Optional[int] = None,
        widths: Sequence[int] = BASE_WIDTHS,
        num_virtual: int = NUM_VIRTUAL_JOINTS,
        hyperedge_k: int | Sequence[int] = HYPEREDGE_K,
        drop_rate: float = 0.0,
        divergence_weight: float = DIVERGENCE_WEIGHT,
        virtual_init: str = "independent",
        layout: str = "ntu25",
    ) -> None:
        super().__init__()
        graph = layout_graph(layout, "B")
        if num_joints is not None and num_joints != graph.num_joints:
            raise ValueError(f"layout {layout!r} has {graph.num_joints} joints; num_joints={num_joints} disagrees")
        num_joints = graph.num_joints
        if len(widths) != len(BLOCK_STRIDES):
            raise ValueError(f"widths must name {len(BLOCK_STRIDES)} blocks, got {len(widths)}")
        if num_virtual < 2 and divergence_weight:
            raise ValueError("the divergence loss needs at least 2 virtual joints")
        self.num_classes = num_classes
        self.num_persons = num_persons
        self.num_joints = num_joints
        self.divergence_weight = divergence_weight
        self.joint_embedding = nn.Linear(in_channels, EMBED_DIM)
        self.pos_embedding = nn.Parameter(torch.randn(num_joints, EMBED_DIM))
        self.data_bn = nn.BatchNorm1d(num_persons * num_joints * EMBED_DIM)
        prior = virtual_prior_graph(graph, num_virtual, NUM_HEADS)
        blocks = []
        in_width = EMBED_DIM
        for width, stride in zip(widths, BLOCK_STRIDES):
            blocks.append(HyperGCNBlock(in_width, width, prior, stride, num_virtual, hyperedge_k, virtual_init))
            in_width = width
        self.blocks = nn.ModuleList(blocks)
        self.num_features = in_width
        self.drop = nn.Dropout(drop_rate)
        self.fc = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> nn.Linear:
        """Linear(D, num_classes), weights N(0, sqrt(2 / num_classes)), zero bias (as the release)."""
        return ctrgcn_classifier(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x float32 [N, M, T, V, C] -> EncoderOutput.

        ``sequence`` [N, T', D], ``pooled`` [N, D], ``spatial`` [N, D, T', V] (persons
        averaged), ``aux["loss_divergence"]`` (weighted scalar, when the weight is non-zero);
        T' = T / 4, D = the last block width.
        """
        n, m, _, v, _ = x.shape
        if m != self.num_persons or v != self.num_joints:
            raise ValueError(f"expected [N, {self.num_persons}, T, {self.num_joints}, C] input, got {tuple(x.shape)}")
        x = torch.tanh(self.joint_embedding(x) + self.pos_embedding)
        x = rearrange(x, "n m t v c -> n (m v c) t")
        x = rearrange(self.data_bn(x), "n (m v c) t -> (n m) c t v", m=m, v=v)
        outputs: list[torch.Tensor] = []
        for index, block in enumerate(self.blocks):
            x = block(x + outputs[-2] if index in SKIP_INTO_BLOCKS else x)
            outputs.append(x)
        joints = rearrange(x, "(n m) d t v -> n m d t v", n=n).mean(dim=1)
        aux = {}
        if self.divergence_weight:
            divergence = virtual_joint_divergence([block.gcn.virtual_joints for block in self.blocks])
            aux["loss_divergence"] = self.divergence_weight * divergence
        return EncoderOutput(
            sequence=rearrange(joints.mean(dim=-1), "n d t -> n t d"),
            pooled=joints.mean(dim=(-1, -2)),
            spatial=joints,
            aux=aux,
        )

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """EncoderOutput -> logits [N, num_classes] (dropout, fc); ``pooled`` [N, D] with ``pre_logits`` or no fc."""
        if pre_logits or self.fc is None:
            return feats.pooled
        return self.fc(self.drop(feats.pooled))


@register_model("hypergcn", modality="skeleton")
def hypergcn(num_classes: int = 60, **kwargs: object) -> HyperGCN:
    """Hyper-GCN base (9 blocks, 128-256-256; about 1.04M trainable parameters at 60 classes)."""
    return HyperGCN(num_classes=num_classes, widths=BASE_WIDTHS, **kwargs)


@register_model("hypergcn_large", modality="skeleton")
def hypergcn_large(num_classes: int = 60, **kwargs: object) -> HyperGCN:
    """Hyper-GCN large (blocks 7-9 512 wide; about 2.3M trainable parameters)."""
    return HyperGCN(num_classes=num_classes, widths=LARGE_WIDTHS, **kwargs)
