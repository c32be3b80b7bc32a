"""Continual (frame-by-frame) inference for ST-GCN, as CoST-GCN does it (Hedegaard et al. 2022/2023).

A windowed classifier recomputes every layer over the last T frames each time it classifies.
A continual one pushes each new frame once through every layer: each temporal convolution keeps
its last ``kernel - 1`` inputs, emits one output per ``stride`` inputs, and the global average pool
keeps the last T' final features.

Exactness. With zero temporal padding, the windowed forward's activations near the window's
edges depend on the padding, which a stream never sees, so no continual computation equals
``model(x)``. What it equals (CoST-GCN's definition) is the same weights run *without* temporal
padding: :func:`stgcn_valid_forward`. In it

- every 9 x 1 temporal convolution is "valid" (padding 0): T_out = floor((T_in - 9) / s) + 1,
  its output j reading inputs ``j*s .. j*s + 8`` (a stride-2 layer sampled at the positions that
  the window's own first frame defines);
- the residual is aligned with the *centre* of that kernel: output j adds ``residual(x)`` at
  input ``j*s + 4`` (the padded model's residual reads input ``j*s``, which there is the kernel's
  centre because of the padding of 4). In a stream this is a delay line of 4 inputs at the
  block's input rate;
- the global average runs over the T' positions that remain.

For the ST-GCN of :mod:`.stgcn` (10 blocks of kernel 9, strides 2 at blocks 4 and 7) one final
position sees 153 frames (:func:`stgcn_receptive_field`), so a window needs T >= 153 and then
has T' = floor((T - 153) / 4) + 1 positions (:func:`stgcn_valid_length`). Windows of 32 or 64
frames, as the padded model takes, have no valid output at all.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..features import EncoderOutput
from .skeleton_head import pool_joint_features
from .stgcn import STGCN, STGCNBlock


def _block_conv(block: STGCNBlock) -> nn.Conv2d:
    """The block's temporal convolution (``tcn[2]`` is the :class:`UnitTCN`)."""
    return block.tcn[2].conv


def block_kernel_stride(block: STGCNBlock) -> Tuple[int, int]:
    """(temporal kernel, temporal stride) of one block's temporal convolution (dilation 1 only)."""
    conv = _block_conv(block)
    if conv.dilation[0] != 1:
        raise ValueError(f"continual ST-GCN supports dilation 1 only, got {conv.dilation[0]}")
    return int(conv.kernel_size[0]), int(conv.stride[0])


def stgcn_total_stride(model: STGCN) -> int:
    """The product of the blocks' temporal strides (4 for ST-GCN): one final position per that many frames."""
    total = 1
    for block in model.blocks:
        total *= block_kernel_stride(block)[1]
    return total


def stgcn_receptive_field(model: STGCN) -> int:
    """Frames one final position of the padding-free model sees: the minimum window T (153 for ST-GCN)."""
    rf = 1
    for block in reversed(model.blocks):
        kernel, stride = block_kernel_stride(block)
        rf = (rf - 1) * stride + kernel
    return rf


def stgcn_valid_length(model: STGCN, num_frames: int) -> int:
    """T': final positions of :func:`stgcn_valid_forward` on ``num_frames`` frames (<= 0: too short).

    Layer by layer T_out = floor((T_in - kernel) / stride) + 1; for ST-GCN this is
    floor((T - 153) / 4) + 1.
    """
    length = num_frames
    for block in model.blocks:
        kernel, stride = block_kernel_stride(block)
        if length < kernel:
            return 0
        length = (length - kernel) // stride + 1
    return length


def _require_eval(model: STGCN) -> None:
    if model.training:
        raise ValueError("continual / valid ST-GCN run in eval mode only (BatchNorm running statistics, no dropout)")


def _valid_block(block: STGCNBlock, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """One block without temporal padding: h [N', C_in, T, V] -> [N', C_out, floor((T - k) / s) + 1, V]."""
    kernel, stride = block_kernel_stride(block)
    conv = _block_conv(block)
    g = block.tcn[1](block.tcn[0](block.gcn(h, a)))  # graph conv -> BN -> ReLU
    y = F.conv2d(g, conv.weight, conv.bias, stride=(stride, 1))
    y = block.tcn[3](block.tcn[2].bn(y))  # BN -> dropout (identity in eval)
    if block.residual is not None:
        centre = (kernel - 1) // 2
        t_out = y.shape[2]
        # inputs centre, centre + s, ...: the residual's own stride picks every s-th
        y = y + block.residual(h[:, :, centre:centre + (t_out - 1) * stride + 1])
    return torch.relu_(y)


@torch.no_grad()
def stgcn_valid_features(model: STGCN, x: torch.Tensor) -> EncoderOutput:
    """``model``'s features without temporal padding (see :func:`stgcn_valid_forward`).

    Args:
        model: an :class:`STGCN` in eval mode.
        x: float [N, M, T, V, C], T >= :func:`stgcn_receptive_field` (153 for ST-GCN).

    Returns:
        EncoderOutput with ``sequence`` [N, T', D] (T' = :func:`stgcn_valid_length`), ``pooled``
        [N, D] and ``spatial`` [N, D, T', V]. Final position k covers frames ``4k .. 4k + 152``;
        it equals the padded model's position ``k + 19`` (centred on frame ``4k + 76``) wherever
        that one's receptive field lies inside the window.
    """
    _require_eval(model)
    if stgcn_valid_length(model, x.shape[2]) < 1:
        raise ValueError(f"a window of T = {x.shape[2]} frames is shorter than the receptive field "
                         f"{stgcn_receptive_field(model)} of the padding-free ST-GCN")
    h = model.data_bn(x)
    for i, block in enumerate(model.blocks):
        h = _valid_block(block, h, model.block_adjacency(i))
    return pool_joint_features(h, x.shape[1])


@torch.no_grad()
def stgcn_valid_forward(model: STGCN, x: torch.Tensor) -> torch.Tensor:
    """The windowed reference of continual inference: ``model``'s weights without temporal padding.

    Args:
        model: an :class:`STGCN` in eval mode.
        x: float [N, M, T, V, C], T >= :func:`stgcn_receptive_field` (153 for ST-GCN).

    Returns:
        logits [N, num_classes] (the pooled feature [N, D] for ``num_classes=0``), averaged over
        the T' = :func:`stgcn_valid_length` final positions.
    """
    return model.forward_head(stgcn_valid_features(model, x))


def _bn_affine(bn: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) [C] of an eval-mode BatchNorm: ``bn(x) = x * scale + shift`` per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class _ContinualBlock:
    """Stream state of one :class:`STGCNBlock`, frames channel-last [N' * V, C].

    The block's eval-mode BatchNorms are folded into its weights at construction, and each
    1 x 1 or 9 x 1 convolution becomes one matrix product: graph conv ``[N'V, C_in] @ [C_in, K C]``
    then ``[V, K V] @ [N', K V, C]`` over the adjacency; temporal conv ``[N'V, 9 C] @ [9 C, C_out]``
    over the last 9 graph-conv outputs. State: those 9 outputs, and the last ``centre + 1`` = 5
    inputs, a delay line for the residual.
    """

    def __init__(self, block: STGCNBlock, a: torch.Tensor) -> None:
        self.kernel, self.stride = block_kernel_stride(block)
        self.centre = (self.kernel - 1) // 2
        k, v = a.shape[0], a.shape[-1]
        gcn = block.gcn.conv
        c_out = gcn.out_channels // k
        s1, t1 = _bn_affine(block.tcn[0])
        w = gcn.weight.reshape(k, c_out, -1) * s1[None, :, None]  # BN scale commutes with the graph sum
        self.gcn_weight = rearrange(w, "k c i -> i (k c)").contiguous()
        self.gcn_bias = (gcn.bias.reshape(k, c_out) * s1).reshape(-1)
        self.gcn_shift = t1
        self.adjacency = rearrange(a, "k v w -> w (v k)").contiguous()  # [V, V K], (v k) as the frame's rows
        self.num_joints = v
        conv = _block_conv(block)
        s2, t2 = _bn_affine(block.tcn[2].bn)
        self.tcn_weight = rearrange(conv.weight[..., 0] * s2[:, None, None], "o i t -> (t i) o").contiguous()
        self.tcn_bias = conv.bias * s2 + t2
        self.residual = block.residual is not None
        self.res_weight: Optional[torch.Tensor] = None  # None with a residual: identity
        if isinstance(block.residual, nn.Module) and not isinstance(block.residual, nn.Identity):
            s3, t3 = _bn_affine(block.residual.bn)
            self.res_weight = (block.residual.conv.weight[:, :, 0, 0] * s3[:, None]).t().contiguous()
            self.res_bias = block.residual.conv.bias * s3 + t3
        self.gcn_frames: Deque[torch.Tensor] = deque(maxlen=self.kernel)
        self.inputs: Deque[torch.Tensor] = deque(maxlen=self.centre + 1)
        self.seen = 0

    def reset(self) -> None:
        self.gcn_frames.clear()
        self.inputs.clear()
        self.seen = 0

    def graph_conv(self, h: torch.Tensor) -> torch.Tensor:
        """h [N'V, C_in] -> ReLU(BN(graph conv)) [N'V, C_out]."""
        g = torch.addmm(self.gcn_bias, h, self.gcn_weight)  # [N'V, K C]
        n = h.shape[0] // self.num_joints
        g = g.reshape(n, -1, self.gcn_shift.shape[0])  # [N', V K, C]
        g = torch.matmul(self.adjacency, g).add_(self.gcn_shift)  # [N', V, C]
        return torch.relu_(g.reshape(h.shape[0], -1))

    def step(self, h: torch.Tensor) -> Optional[torch.Tensor]:
        """One input frame h [N'V, C_in] -> an output frame [N'V, C_out], or None.

        Input i (counted from 0 since reset) completes the kernel window ``i - 8 .. i``; an
        output is emitted when ``i >= kernel - 1`` and ``(i - kernel + 1) % stride == 0``, with the
        residual of input ``i - 4`` (the kernel's centre).
        """
        self.gcn_frames.append(self.graph_conv(h))
        self.inputs.append(h)
        self.seen += 1
        done = self.seen - self.kernel
        if done < 0 or done % self.stride:
            return None
        window = torch.cat(tuple(self.gcn_frames), dim=1)  # [N'V, kernel * C_out], (t c)
        y = torch.addmm(self.tcn_bias, window, self.tcn_weight)
        if self.residual:
            centre = self.inputs[0]  # the input ``centre`` steps ago
            y = y.add_(centre if self.res_weight is None else torch.addmm(self.res_bias, centre, self.res_weight))
        return torch.relu_(y)


class ContinualSTGCN:
    """ST-GCN fed one frame at a time, equal to :func:`stgcn_valid_forward` on the last T frames.

    Each :meth:`step` passes the frame through the input BatchNorm and block 0, and each block
    passes its output on when it has one: a stride-2 block emits every 2nd input, so blocks 5-9
    run every 2nd or 4th frame (one pass per layer at that layer's rate). The final features,
    averaged over joints and persons, go into a ring buffer of the last T' positions, whose mean
    goes through the model's head.

    Phase rule. The stride-2 layers take their first output at the first frame they can (the
    stream's frame 0 defines their phase), so a final position covers frames ``p .. p + 152``
    with ``p`` a multiple of 4 (of the total stride S). The window of the last T frames after n
    frames were pushed, frames ``n - T .. n - 1``, starts on that grid when ``(n - T) % S == 0``;
    :meth:`step` returns logits exactly then (and n >= T), equal to
    ``stgcn_valid_forward(model, last_T_frames)``, and None otherwise: one classification every
    S = 4 frames.

    Delay. The newest final position covers frames ``n - 153 .. n - 1`` (receptive field R = 153),
    so the features of a position centred on frame c are ready R // 2 = 76 frames after c. Each
    block's residual waits 4 inputs at the block's input rate (4, 8 or 16 frames) to meet the
    centre of its 9-frame kernel. The first logits come after T frames (T >= R).

    Args:
        model: an :class:`STGCN` in eval mode. Its BatchNorms and edge-importance masks are folded
            into per-block matrices here (the head is called live): build a new ContinualSTGCN
            after loading other weights.
        num_frames: T, the window classified (>= :func:`stgcn_receptive_field`).
    """

    def __init__(self, model: STGCN, num_frames: int) -> None:
        _require_eval(model)
        self.model = model
        self.num_frames = num_frames
        self.total_stride = stgcn_total_stride(model)
        self.receptive_field = stgcn_receptive_field(model)
        self.num_positions = stgcn_valid_length(model, num_frames)
        if self.num_positions < 1:
            raise ValueError(f"T = {num_frames} is shorter than the receptive field {self.receptive_field}")
        if model.data_bn.per_person:
            raise ValueError("continual ST-GCN expects the data BN shared by persons (per_person=False)")
        with torch.no_grad():
            scale, shift = _bn_affine(model.data_bn.bn)  # [V * C], (v c)
            self.data_scale = scale.reshape(model.num_joints, -1)
            self.data_shift = shift.reshape(model.num_joints, -1)
            self.blocks: List[_ContinualBlock] = [_ContinualBlock(b, model.block_adjacency(i))
                                                  for i, b in enumerate(model.blocks)]
        self.positions: Deque[torch.Tensor] = deque(maxlen=self.num_positions)
        self.frames_seen = 0
        self.num_persons: Optional[int] = None

    def reset(self) -> None:
        """Forget every frame: the next :meth:`step` is frame 0 of a new stream."""
        for block in self.blocks:
            block.reset()
        self.positions.clear()
        self.frames_seen = 0
        self.num_persons = None

    @torch.no_grad()
    def step(self, frame: torch.Tensor) -> Optional[torch.Tensor]:
        """Push one frame; the logits of the last T frames when aligned, else None.

        Args:
            frame: float [N, M, 1, V, C] or [N, M, V, C] (M and N fixed between resets).

        Returns:
            logits [N, num_classes] once ``frames_seen >= T`` and ``(frames_seen - T) % 4 == 0``
            (``frames_seen`` counts this frame), else None.
        """
        if frame.ndim == 4:
            frame = frame.unsqueeze(2)
        if frame.ndim != 5 or frame.shape[2] != 1:
            raise ValueError(f"expected one frame [N, M, 1, V, C] or [N, M, V, C], got {tuple(frame.shape)}")
        if self.num_persons is None:
            self.num_persons = frame.shape[1]
        elif frame.shape[1] != self.num_persons:
            raise ValueError(f"M changed from {self.num_persons} to {frame.shape[1]} without reset()")
        self.frames_seen += 1
        n_clips, m, _, v, c = frame.shape
        h: Optional[torch.Tensor] = (frame[:, :, 0] * self.data_scale + self.data_shift).reshape(-1, c)  # [N M V, C]
        for block in self.blocks:
            h = block.step(h)
            if h is None:
                break
        if h is not None:  # a final position: mean over joints, then persons (as pool_joint_features)
            self.positions.append(h.reshape(n_clips, m, v, -1).mean(dim=2).mean(dim=1))  # [N, D]
        n = self.frames_seen
        if n < self.num_frames or (n - self.num_frames) % self.total_stride:
            return None
        sequence = torch.stack(tuple(self.positions), dim=1)  # [N, T', D]
        return self.model.forward_head(EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1)))
