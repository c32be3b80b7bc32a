"""Input streams (modalities) of the skeleton GCN literature, on one sample [M, T, V, C].

Definitions (shared/specs/skeleton-gcn.md; pyskl ``JointToBone``/``ToMotion``, CTR-GCN feeders):

- joint: ``x`` itself;
- bone: ``b[v] = x[v] - x[parent(v)]``, the root's bone is 0;
- skip (BRL/ACLNet "k"): ``x[v] - x[grandparent(v)]`` with ``parent(root) = root``, so the
  root's skip is 0 and a child of the root gets its bone;
- motion of any stream: ``m[t] = s[t + 1] - s[t]``, the last frame 0.

The tree is the layout's (:mod:`.layouts`); for NTU-25 it gives exactly the CTR-GCN/pyskl bone
pairs. Differences are taken as they are: a bone between a present and a missing (zero)
joint is not masked, as in the references.
"""

from __future__ import annotations

import numpy as np

from .layouts import JointLayout, get_layout

STREAM_NAMES: tuple[str, ...] = ("joint", "bone", "joint_motion", "bone_motion", "skip", "skip_motion")
"""Names accepted by :func:`make_stream`."""


def _check(x: np.ndarray, layout: JointLayout) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[2] != layout.num_joints:
        raise ValueError(f"expected [M, T, {layout.num_joints}, C] for layout {layout.name!r}, got shape {x.shape}")
    return x


def _parents_self_root(layout: JointLayout) -> np.ndarray:
    """int64 [V] parents with the root pointing at itself."""
    parents = np.asarray(layout.parents, dtype=np.int64)
    return np.where(parents < 0, np.arange(layout.num_joints), parents)


def to_bone(x: np.ndarray, layout: "str | JointLayout") -> np.ndarray:
    """Bones ``x[v] - x[parent(v)]``, root 0.

    Args:
        x: float [M, T, V, C].

    Returns:
        float32 [M, T, V, C].
    """
    lay = get_layout(layout)
    x = _check(x, lay)
    return (x - x[:, :, _parents_self_root(lay)]).astype(np.float32)


def to_skip(x: np.ndarray, layout: "str | JointLayout") -> np.ndarray:
    """Skip bones ``x[v] - x[grandparent(v)]`` (root 0, children of the root = their bone).

    Args:
        x: float [M, T, V, C].

    Returns:
        float32 [M, T, V, C].
    """
    lay = get_layout(layout)
    x = _check(x, lay)
    parents = _parents_self_root(lay)
    return (x - x[:, :, parents[parents]]).astype(np.float32)


def to_motion(x: np.ndarray) -> np.ndarray:
    """Temporal difference ``m[t] = x[t + 1] - x[t]``, last frame 0.

    Args:
        x: float [M, T, V, C].

    Returns:
        float32 [M, T, V, C].
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected [M, T, V, C], got shape {x.shape}")
    out = np.zeros_like(x)
    out[:, :-1] = x[:, 1:] - x[:, :-1]
    return out


def make_stream(x: np.ndarray, name: str, layout: "str | JointLayout") -> np.ndarray:
    """One of :data:`STREAM_NAMES` computed from joints ``x`` float [M, T, V, C] -> float32 [M, T, V, C]."""
    if name == "joint":
        return np.asarray(x, dtype=np.float32).copy()
    if name == "bone":
        return to_bone(x, layout)
    if name == "skip":
        return to_skip(x, layout)
    if name == "joint_motion":
        return to_motion(x)
    if name == "bone_motion":
        return to_motion(to_bone(x, layout))
    if name == "skip_motion":
        return to_motion(to_skip(x, layout))
    raise ValueError(f"unknown stream {name!r}; known: {', '.join(STREAM_NAMES)}")


def unified_12ch(x: np.ndarray, layout: "str | JointLayout") -> np.ndarray:
    """PSUMNet's unified input: [joint, bone, joint_motion, bone_motion] concatenated on C.

    Args:
        x: float [M, T, V, 3].

    Returns:
        float32 [M, T, V, 12] (4 C in general).
    """
    bone = to_bone(x, layout)
    joint = np.asarray(x, dtype=np.float32)
    return np.concatenate([joint, bone, to_motion(joint), to_motion(bone)], axis=-1)
