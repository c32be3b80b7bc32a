"""Building blocks shared by the skeleton GCNs: input normalisation, temporal convolutions, residuals.

Tensors inside the networks are laid out ``[N', C, T, V]`` with ``N' = N * M`` (every person of
every clip is one sample), as in the reference implementations:

- CTR-GCN (Uason-Chen/CTR-GCN@e13d758 ``model/ctrgcn.py``): :class:`UnitTCN`,
  :class:`MultiScaleTCN` (four branches, kernel 5, dilations 1 and 2).
- pyskl (kennymckormick/pyskl@3f6795f ``pyskl/models/gcns/utils/tcn.py``): :class:`UnitTCN`,
  :class:`MixedScaleTCN` (six branches and a 1x1 transform, ST-GCN++).
- ST-GCN (yysijie/st-gcn@221c0e1 ``net/st_gcn.py``): the input :class:`DataBatchNorm`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..dropout import UniformMaskDropout

BranchSpec = Union[Tuple[int, int], Tuple[str, int], str]
"""A temporal branch: ``(kernel, dilation)``, ``("max", kernel)`` or ``"1x1"``."""

# pyskl mstcn default: four dilated 3-tap convolutions, a max-pool branch and a 1x1 branch.
PYSKL_MSTCN_BRANCHES: Tuple[BranchSpec, ...] = ((3, 1), (3, 2), (3, 3), (3, 4), ("max", 3), "1x1")


def conv_init_fan_out(conv: nn.Conv2d) -> None:
    """Kaiming-normal weights (fan out), zero bias: CTR-GCN's ``conv_init``."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def bn_init(bn: nn.BatchNorm2d, scale: float) -> None:
    """Constant gamma ``scale``, zero beta: CTR-GCN's ``bn_init``."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def temporal_padding(kernel_size: int, dilation: int) -> int:
    """Padding keeping T unchanged at stride 1 for a dilated ``kernel_size`` x 1 convolution."""
    return (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2


class DataBatchNorm(nn.Module):
    """Input BatchNorm1d over the joint coordinates, then the persons folded into the batch.

    ``per_person=True`` normalises each (person slot, joint, channel) separately
    (``BatchNorm1d(M * V * C)``, CTR-GCN); ``False`` shares statistics across persons
    (``BatchNorm1d(V * C)``, ST-GCN and pyskl's default ``'VC'``).
    """

    def __init__(self, in_channels: int, num_joints: int, num_persons: int = 2, per_person: bool = True,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.per_person = per_person
        self.channels_last = channels_last
        self.num_persons = num_persons
        width = in_channels * num_joints * (num_persons if per_person else 1)
        self.bn = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, M, T, V, C] -> [N * M, C, T, V] (persons of one clip adjacent)."""
        n, m, t, v, c = x.shape
        if self.per_person:
            if m != self.num_persons:
                raise ValueError(f"this model was built for M = {self.num_persons} persons, got M = {m}")
            y = self.bn(rearrange(x, "n m t v c -> n (m v c) t"))
            y = rearrange(y, "n (m v c) t -> (n m) c t v", m=m, v=v, c=c)
        else:
            y = self.bn(rearrange(x, "n m t v c -> (n m) (v c) t"))
            y = rearrange(y, "nm (v c) t -> nm c t v", v=v, c=c)
        return y.contiguous(memory_format=torch.channels_last) if self.channels_last else y


def partitioned_graph_conv(x: torch.Tensor, conv: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """ST-GCN's graph convolution ``y[n, c, t, w] = sum_k sum_v a[k, v, w] conv(x)_k[n, c, t, v]``.

    ``conv`` is the 1x1 convolution of ``K * C_out`` outputs (subset k's channels at ``k * C_out``),
    as in ST-GCN and pyskl; the reference code runs it, then ``einsum('nkctv,kvw->nctw')``, which
    copies the ``K * C_out``-channel result into ``[(n c t), (k v)]`` order. Here the graph comes
    first, on channels-last memory, and no tensor is copied:

    1. ``z[(n t), (w k), c_in] = a[(w k), v] @ x[(n t), v, c_in]`` (one batched matmul);
    2. ``y[(n t w), c] = z[(n t w), (k c_in)] @ W[(k c_in), c]`` (one GEMM), plus the bias carried
       through the graph, ``b'[w, c] = sum_k (sum_v a[k, v, w]) b[k, c]``.

    Equal to the reference order to float rounding (the same products, summed in another order).
    Forward and backward of the graph convolution alone (2 threads, 32 person-clips): 0.55-0.65x
    the reference order at 64-256 channels.

    Args:
        x: [N', C_in, T, V], ideally channels-last in memory (otherwise one copy makes it so).
        conv: ``nn.Conv2d(C_in, K * C_out, 1)`` with a bias.
        a: [K, V, W].

    Returns:
        [N', C_out, T, W], channels-last in memory.
    """
    n, c_in, t, v = x.shape
    k, _, w = a.shape
    c_out = conv.out_channels // k
    rows = x.permute(0, 2, 3, 1).reshape(n * t, v, c_in)  # a view of channels-last memory
    # bmm over the expanded graph: torch.matmul would fold the batch by transposing rows (a copy)
    z = torch.bmm(a.permute(2, 0, 1).reshape(w * k, v).expand(n * t, -1, -1), rows)  # [(N' T), (W K), C_in]
    weight = conv.weight.view(k, c_out, c_in).transpose(1, 2).reshape(k * c_in, c_out)
    y = torch.mm(z.view(n * t * w, k * c_in), weight).view(n, t, w, c_out)
    bias = torch.einsum("kvw,kc->wc", a, conv.bias.view(k, c_out))  # [W, C_out]
    return (y + bias).permute(0, 3, 1, 2)


def _graph_capture() -> bool:
    """True while ``torch.compile`` traces or ``torch.onnx`` exports: there the convolution is kept,
    for inductor's and ONNX Runtime's own convolution kernels."""
    return bool(torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export())


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   stride: Tuple[int, int] = (1, 1)) -> torch.Tensor:
    """A 1x1 convolution, ``F.conv2d(x, weight, bias, stride=stride)``, as one batched matmul.

    On NCHW-contiguous input each clip's ``[C_out, C_in] @ [C_in, T V]`` runs as one ``baddbmm``
    over the batch (the bias its added term): forward and backward took 0.60-0.83x PyTorch 2.14's
    CPU convolution kernel at the GCNs' shapes (2 threads, 32 person-clips, C_in 64-256,
    ``benchmarks/bench_pointwise_conv.py``). Other memory layouts (channels-last), and graphs
    being traced by ``torch.compile`` or exported to ONNX, go to ``F.conv2d``. A stride subsamples
    first: PyTorch 2.14's CPU kernel for strided 1x1 convolutions on channels-last input crashed
    the process (segmentation fault, or heap corruption reported later) in backward at widths 4
    and 8 (not at 16 to 64); subsampling first never reaches it. The same products as the
    convolution, summed in another order.

    Args:
        x: [N', C_in, T, V].
        weight: [C_out, C_in, 1, 1].
        bias: [C_out] or None.
        stride: (temporal, joint) stride.

    Returns:
        [N', C_out, ceil(T / s_t), ceil(V / s_v)].
    """
    nchw = x.is_contiguous() and not _graph_capture()
    if tuple(stride) != (1, 1):
        x = x[:, :, ::stride[0], ::stride[1]]
    if not nchw:
        return F.conv2d(x, weight, bias)
    n, c_in, t, v = x.shape
    c_out = weight.shape[0]
    rows = x.reshape(n, c_in, t * v)  # a view, or one copy of the subsampled frames
    mixing = weight.view(c_out, c_in).expand(n, c_out, c_in)
    if bias is None:
        return torch.bmm(mixing, rows).view(n, c_out, t, v)
    return torch.baddbmm(bias.view(1, c_out, 1).expand(n, c_out, t * v), mixing, rows).view(n, c_out, t, v)


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1, stride)`` computed by :func:`pointwise_conv`.

    The same parameters and state-dict keys as the ``nn.Conv2d`` it replaces (checkpoints and the
    official converters are unchanged). x [N', C_in, T, V] -> [N', C_out, ceil(T / s_t), V].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: Union[int, Tuple[int, int]] = 1,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise_conv(x, self.weight, self.bias, self.stride)


class UnitTCN(nn.Module):
    """A ``kernel_size`` x 1 temporal convolution followed by BatchNorm (or nothing)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 9,
        stride: int = 1,
        dilation: int = 1,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=(kernel_size, 1),
            padding=(temporal_padding(kernel_size, dilation), 0),
            stride=(stride, 1),
            dilation=(dilation, 1),
        )
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, ceil(T / stride), V]."""
        conv = self.conv
        if conv.kernel_size == (1, 1):  # see pointwise_conv
            return self.bn(pointwise_conv(x, conv.weight, conv.bias, conv.stride))
        return self.bn(conv(x))


def block_residual(in_channels: int, out_channels: int, stride: int, enabled: bool = True) -> Optional[nn.Module]:
    """The residual path of a GCN block.

    None when ``enabled`` is False (the block adds nothing), identity when the shapes
    match, otherwise a strided 1x1 convolution + BatchNorm.
    """
    if not enabled:
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return UnitTCN(in_channels, out_channels, kernel_size=1, stride=stride)


def add_residual(y: torch.Tensor, x: torch.Tensor, residual: Optional[nn.Module]) -> torch.Tensor:
    """``y + residual(x)``, or ``y`` when ``residual`` is None."""
    return y if residual is None else y + residual(x)


def _leading_pointwise_conv(branch: nn.Module) -> Optional[nn.Conv2d]:
    """The branch's first layer if it is a plain 1x1 convolution with a bias (else None)."""
    first = branch[0] if isinstance(branch, nn.Sequential) and len(branch) else branch
    if (isinstance(first, nn.Conv2d) and first.kernel_size == (1, 1) and first.padding == (0, 0)
            and first.dilation == (1, 1) and first.groups == 1 and first.bias is not None
            and first.padding_mode == "zeros"):
        return first
    return None


def run_branches(x: torch.Tensor, branches: Sequence[nn.Module]) -> list:
    """``[branch(x) for branch in branches]``, with the branches' leading 1x1 convolutions fused.

    Every branch that starts with a plain 1x1 convolution (a bare one, or the first layer of an
    ``nn.Sequential``) shares that convolution's input with the others, so those of one stride run
    as one convolution of their concatenated weights (one GEMM forward, one for the input's
    gradient, instead of one each plus the sum of the input gradients); the rest of each branch
    then runs on its slice. The modules keep their own parameters. x [N', C_in, T, V].
    """
    heads = [_leading_pointwise_conv(branch) for branch in branches]
    outputs: list = [None] * len(branches)
    groups: dict = {}
    for i, head in enumerate(heads):
        if head is None:
            outputs[i] = branches[i](x)
        else:
            groups.setdefault(head.stride, []).append(i)
    for stride, members in groups.items():
        convs = [heads[i] for i in members]
        if len(members) == 1:
            fused = [pointwise_conv(x, convs[0].weight, convs[0].bias, stride)]
        else:
            weight = torch.cat([c.weight for c in convs])
            bias = torch.cat([c.bias for c in convs])
            fused = pointwise_conv(x, weight, bias, stride).split([c.out_channels for c in convs], dim=1)
        for i, h in zip(members, fused):
            branch = branches[i]
            outputs[i] = branch[1:](h) if isinstance(branch, nn.Sequential) else h
    return outputs


class MultiScaleTCN(nn.Module):
    """CTR-GCN's multi-scale temporal convolution (``MultiScale_TemporalConv``, residual off).

    ``len(dilations) + 2`` branches of ``C_out / branches`` channels, concatenated:
    per dilation, 1x1 conv -> BN -> ReLU -> ``kernel_size`` x 1 dilated conv -> BN; one of
    1x1 conv -> BN -> ReLU -> 3x1 max-pool -> BN; one strided 1x1 conv -> BN.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        stride: int = 1,
        dilations: Sequence[int] = (1, 2),
    ) -> None:
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels % num_branches:
            raise ValueError(f"out_channels {out_channels} must be a multiple of the {num_branches} branches")
        width = out_channels // num_branches
        branches = [
            nn.Sequential(
                nn.Conv2d(in_channels, width, kernel_size=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                UnitTCN(width, width, kernel_size=kernel_size, stride=stride, dilation=dilation),
            )
            for dilation in dilations
        ]
        branches.append(
            nn.Sequential(
                nn.Conv2d(in_channels, width, kernel_size=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0)),
                nn.BatchNorm2d(width),
            )
        )
        branches.append(
            nn.Sequential(nn.Conv2d(in_channels, width, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(width))
        )
        self.branches = nn.ModuleList(branches)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """CTR-GCN's ``weights_init``: Kaiming fan-out convolutions, BN gamma ~ N(1, 0.02)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init_fan_out(m)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, ceil(T / stride), V]."""
        return torch.cat(run_branches(x, self.branches), dim=1)


class MixedScaleTCN(nn.Module):
    """pyskl's ``mstcn`` (ST-GCN++): branches, then BN -> ReLU -> 1x1 transform -> BN.

    Branch widths are ``C_out // B``; the first branch takes the remainder. Branch kinds
    (``branches``): ``(k, d)`` 1x1 conv -> BN -> ReLU -> k x 1 conv of dilation d (no BN);
    ``("max", k)`` 1x1 conv -> BN -> ReLU -> k x 1 max-pool; ``"1x1"`` a strided 1x1 conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        branches: Sequence[BranchSpec] = PYSKL_MSTCN_BRANCHES,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        num_branches = len(branches)
        width = out_channels // num_branches
        first_width = out_channels - width * (num_branches - 1)
        modules = []
        for i, spec in enumerate(branches):
            c = first_width if i == 0 else width
            if spec == "1x1":
                modules.append(nn.Conv2d(in_channels, c, kernel_size=1, stride=(stride, 1)))
                continue
            if not isinstance(spec, tuple) or len(spec) != 2:
                raise ValueError(f"unknown temporal branch {spec!r}")
            stem = [nn.Conv2d(in_channels, c, kernel_size=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if spec[0] == "max":
                pool_k = int(spec[1])
                tail: nn.Module = nn.MaxPool2d((pool_k, 1), stride=(stride, 1), padding=((pool_k - 1) // 2, 0))
            else:
                kernel, dilation = int(spec[0]), int(spec[1])
                tail = UnitTCN(c, c, kernel_size=kernel, stride=stride, dilation=dilation, norm=False)
            modules.append(nn.Sequential(*stem, tail))
        self.branches = nn.ModuleList(modules)
        concat = first_width + width * (num_branches - 1)
        self.transform = nn.Sequential(
            nn.BatchNorm2d(concat), nn.ReLU(inplace=True), PointwiseConv2d(concat, out_channels)
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = UniformMaskDropout(dropout)  # nn.Dropout, its mask 4x cheaper (see modalities/dropout.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, ceil(T / stride), V]."""
        y = torch.cat(run_branches(x, self.branches), dim=1)
        return self.drop(self.bn(self.transform(y)))


def ctrgcn_fc_std(num_classes: int) -> float:
    """CTR-GCN's classifier init std, ``sqrt(2 / num_classes)``."""
    return math.sqrt(2.0 / num_classes)


def ctrgcn_classifier(in_features: int, num_classes: int) -> nn.Linear:
    """Linear(in_features, num_classes) initialised as CTR-GCN's lineage does (Hyper-GCN, PSUMNet):
    weights N(0, sqrt(2 / num_classes)), zero bias."""
    fc = nn.Linear(in_features, num_classes)
    nn.init.normal_(fc.weight, 0.0, ctrgcn_fc_std(num_classes))
    nn.init.zeros_(fc.bias)
    return fc
