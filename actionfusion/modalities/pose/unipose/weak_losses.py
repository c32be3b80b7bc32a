"""C3P's weak losses for 3D poses supervised by 2D detections only (CMUP_open/core.py, via the spec).

Poses are P float [B, T, J, 3] in metres, Kinect camera space (x right, y UP, z forward), J = 17
COCO joints; B clips of T consecutive frames. Detections are float [B, T, J, 3] (u, v in depth
pixels, score; score 0 = missed).

Reconstructions and adaptations (config keys in :class:`.config.LossSection`):

- Rays. C3P writes r = ((u - cx)/fx, (v - cy)/fy, 1) for a camera whose y grows down; the Kinect
  space here has y up (``CameraIntrinsics.backproject``), so r = ((u - cx)/fx, (cy - v)/fy, 1).
  L_ws = mean over detected joints of score * ||(r_x Z - X, r_y Z - Y)|| / (||r|| ||P||), the
  point-to-ray distance normalised by the distance to the camera (about the angle off the ray).
  Missed joints (score 0) add nothing; the mean divides by the summed scores.
- L_ss is identified with the bone-length prior (the spec lists five losses and the total has
  five terms, L_ss being the only unnamed one): MSE between the 8 limb lengths and mean
  lengths. C3P's means come from its data; here they are the anthropometric segment fractions
  of body height of Winter (Biomechanics and Motor Control of Human Movement, 4th ed., Fig. 4.1)
  times ``body_height_m`` (no 3D data is used).
- Bone-ratio regulariser: C3P uses 15 bones of the 15-joint Panoptic skeleton. COCO joints made
  from Kinect skeletons have a degenerate face (nose, eyes and ears are all the Kinect head), so
  the 14 non-degenerate bones of :data:`RATIO_BONES` are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ....geometry import CameraIntrinsics

LIMB_PAIRS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((5, 7), (6, 8)),  # upper arms
    ((7, 9), (8, 10)),  # forearms
    ((11, 13), (12, 14)),  # thighs
    ((13, 15), (14, 16)),  # shins
)
"""Left/right COCO limb pairs (0-based) of C3P's symmetry loss."""

LIMBS: tuple[tuple[int, int], ...] = tuple(b for pair in LIMB_PAIRS for b in pair)
"""The 8 limbs of the bone-length prior, order (L upper arm, R upper arm, L forearm, ...)."""

WINTER_SEGMENT_FRACTIONS: dict[str, float] = {
    "upper_arm": 0.186,  # shoulder-elbow / height
    "forearm": 0.146,  # elbow-wrist / height
    "thigh": 0.245,  # hip-knee / height
    "shin": 0.246,  # knee-ankle / height
}
"""Segment lengths as fractions of body height. Source: D. A. Winter, Biomechanics and Motor
Control of Human Movement (4th ed., 2009), Fig. 4.1 (after Drillis and Contini)."""

RATIO_BONES: tuple[tuple[int, int], ...] = (
    (5, 7), (7, 9), (6, 8), (8, 10),  # arms
    (11, 13), (13, 15), (12, 14), (14, 16),  # legs
    (5, 6), (11, 12), (5, 11), (6, 12),  # torso
    (0, 5), (0, 6),  # head to shoulders
)
"""Bones of the bone-ratio regulariser (14 non-degenerate COCO bones; see module docstring)."""


def limb_prior_lengths(body_height_m: float) -> Tensor:
    """float [8] mean lengths (metres) of :data:`LIMBS` from :data:`WINTER_SEGMENT_FRACTIONS`."""
    f = WINTER_SEGMENT_FRACTIONS
    per_pair = [f["upper_arm"], f["forearm"], f["thigh"], f["shin"]]
    return torch.tensor([x * body_height_m for x in per_pair for _ in range(2)], dtype=torch.float32)


def bone_lengths(pose: Tensor, bones: tuple[tuple[int, int], ...]) -> Tensor:
    """float [..., len(bones)] lengths of ``bones`` in ``pose`` float [..., J, 3]."""
    a = pose[..., [i for i, _ in bones], :]
    b = pose[..., [j for _, j in bones], :]
    return (a - b).norm(dim=-1)


def rays_from_detections(det: Tensor, intrinsics: CameraIntrinsics) -> Tensor:
    """float [..., J, 3] rays r = ((u - cx)/fx, (cy - v)/fy, 1) of detections float [..., J, >=2]."""
    rx = (det[..., 0] - intrinsics.cx) / intrinsics.fx
    ry = (intrinsics.cy - det[..., 1]) / intrinsics.fy
    return torch.stack([rx, ry, torch.ones_like(rx)], dim=-1)


def backprojection_loss(pose: Tensor, det: Tensor, intrinsics: CameraIntrinsics) -> Tensor:
    """L_ws: score-weighted normalised point-to-ray distance (module docstring).

    Args:
        pose: float [..., J, 3] metres.
        det: float [..., J, 3] (u, v, score) depth pixels; score 0 = missed.
    Returns:
        Scalar tensor; 0 when every detected joint lies on its ray.
    """
    r = rays_from_detections(det, intrinsics)
    x, y, z = pose.unbind(-1)
    off = torch.stack([r[..., 0] * z - x, r[..., 1] * z - y], dim=-1).norm(dim=-1)
    dist = off / (r.norm(dim=-1) * pose.norm(dim=-1).clamp_min(1e-6))
    w = det[..., 2]
    return (w * dist).sum() / w.sum().clamp_min(1e-6)


def symmetry_loss(pose: Tensor) -> Tensor:
    """L_sym: MSE([l_L/l_R, l_R/l_L], 1) over :data:`LIMB_PAIRS`; ``pose`` float [..., J, 3] -> scalar."""
    left = bone_lengths(pose, tuple(p[0] for p in LIMB_PAIRS)).clamp_min(1e-4)
    right = bone_lengths(pose, tuple(p[1] for p in LIMB_PAIRS)).clamp_min(1e-4)
    ratios = torch.cat([left / right, right / left], dim=-1)
    return ((ratios - 1.0) ** 2).mean()


def bone_length_loss(pose: Tensor, prior: Tensor) -> Tensor:
    """L_ss: MSE between the lengths of :data:`LIMBS` and ``prior`` float [8] metres -> scalar."""
    return ((bone_lengths(pose, LIMBS) - prior.to(pose)) ** 2).mean()


def motion_loss(pose: Tensor) -> Tensor:
    """L_v: MSE((P_{t-1} + P_{t+1}) / 2, P_t) over ``pose`` float [B, T, J, 3] (T >= 3) -> scalar."""
    if pose.shape[1] < 3:
        return pose.new_zeros(())
    mid = 0.5 * (pose[:, :-2] + pose[:, 2:])
    return ((mid - pose[:, 1:-1]) ** 2).mean()


def bone_ratio_loss(pose: Tensor) -> Tensor:
    """L_vlen: MSE(l_b / mean_b(l_b), 1) over :data:`RATIO_BONES` of ``pose`` float [..., J, 3] -> scalar.

    Reconstruction: the spec leaves the mean's axis open; it is taken over the same bone across
    the clip's frames (dim -3 = T), so each bone keeps a constant length in time.
    """
    lengths = bone_lengths(pose, RATIO_BONES)  # [B, T, nb]
    mean = lengths.mean(dim=-2, keepdim=True).clamp_min(1e-4)
    return ((lengths / mean - 1.0) ** 2).mean()


def surface_loss(pose: Tensor, surface: Tensor, beta: float = 0.05) -> Tensor:
    """L_surf: weighted SmoothL1 (beta metres) between joint depths and body-volume targets.

    Args:
        pose: float [..., J, 3] metres.
        surface: float [..., J, 2] (z target, weight) from
            :func:`.dataset.surface_thickness_targets`.
    Returns:
        Scalar tensor (0 when every weighted joint sits at its target depth).
    """
    w = surface[..., 1]
    err = torch.nn.functional.smooth_l1_loss(pose[..., 2], surface[..., 0], beta=beta, reduction="none")
    return (w * err).sum() / w.sum().clamp_min(1e-6)


@dataclass
class WeakLossTerms:
    """The weighted total and each unweighted term (scalars)."""

    total: Tensor
    ss: Tensor
    ws: Tensor
    sym: Tensor
    motion: Tensor
    ratio: Tensor
    surf: Tensor

    def as_floats(self) -> dict[str, float]:
        """Plain floats keyed by term name."""
        return {k: float(getattr(self, k).detach()) for k in ("total", "ss", "ws", "sym", "motion", "ratio", "surf")}


def weak_loss(
    pose: Tensor,
    det: Tensor,
    intrinsics: CameraIntrinsics,
    prior: Tensor,
    w_ss: float = 1.0,
    w_ws: float = 10.0,
    w_sym: float = 0.002,
    w_motion: float = 0.1,
    w_ratio: float = 0.002,
    surface: "Tensor | None" = None,
    w_surf: float = 0.0,
) -> WeakLossTerms:
    """C3P total L = w_ss L_ss + w_ws L_ws + w_sym L_sym + w_motion L_v + w_ratio L_vlen, plus the
    reconstructed body-volume term w_surf L_surf when ``surface`` is given (w_surf 0 = C3P).

    Args:
        pose: float [B, T, J, 3] metres.
        det: float [B, T, J, 3] (u, v, score) depth pixels.
        prior: float [8] limb lengths (:func:`limb_prior_lengths`).
        surface: float [B, T, J, 2] body-volume depth targets (:func:`surface_loss`).
    """
    ss = bone_length_loss(pose, prior)
    ws = backprojection_loss(pose, det, intrinsics)
    sym = symmetry_loss(pose)
    mot = motion_loss(pose)
    ratio = bone_ratio_loss(pose)
    surf = surface_loss(pose, surface) if surface is not None else pose.new_zeros(())
    total = w_ss * ss + w_ws * ws + w_sym * sym + w_motion * mot + w_ratio * ratio + w_surf * surf
    return WeakLossTerms(total=total, ss=ss, ws=ws, sym=sym, motion=mot, ratio=ratio, surf=surf)
