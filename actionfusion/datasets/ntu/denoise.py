"""Body denoising and actor selection of the CTR-GCN / MAMP NTU preprocessing lineage.

The lineage (maoyunyao/MAMP ``data/ntu/get_raw_skes_data.py``, ``get_raw_denoised_data.py``,
``seq_transformation.py``; the same files under Uason-Chen/CTR-GCN ``data/ntu120/``) turns a
``.skeleton`` file into at most two actors. :func:`denoise_skeleton` reproduces its decisions
as one pure function and reports each of them; :func:`center_on_first_frame` is the
translation step of ``seq_transformation.py``.

What :func:`denoise_skeleton` does, in order (frame indices in the report are 0-based
frames of the file):

1. Drop every frame with no body (``empty_frames``). The frames left are the timeline ``T1``.
2. Per body: its frames on that timeline and its *motion*, ``sum over x, y, z of the
   variance of all its joint coordinates pooled over frames and joints`` (the lineage stacks
   the ``[25, 3]`` joints of every frame into ``[n * 25, 3]`` and takes ``var(axis=0)``; it is
   a pooled variance, not a sum of per-joint variances).
3. If the file has a single body, it is actor 1; nothing else happens (no body filter, no
   frame removal), as in the lineage.
4. Otherwise:
   a. length filter: drop bodies present in ``<= 11`` frames (``too_few_frames``);
   b. spread filter, only while more than one body is left, in order of first appearance:
      a frame of a body is noisy when its x-range exceeds ``0.8`` times its y-range; drop a
      body whose noisy-frame ratio is ``>= 0.69754`` (``spread_noise``); for a body kept
      with some noisy frames, motion becomes ``min(motion, motion of its non-noisy frames)``.
      The last body left is never dropped by this filter.
      (The lineage also defines a motion filter, thresholds 0.089925 and 2, which its code
      never reaches; it is not applied here either.)
   c. sort the bodies by motion, largest first (a stable sort: ties keep order of first
      appearance). The first is actor 1. Each following body goes to the first actor slot
      whose interval it does not overlap, and widens that slot's interval. Intervals are
      ``[first frame, last frame]``; "no overlap" is the lineage's test
      ``min(end_a, end_b) - max(start_a, start_b) <= 0``, so intervals that share exactly one
      frame do not overlap (the later body then overwrites that frame). Slots 2.. start with
      the virtual interval ``[0, 0]``, as in the lineage (so their start stays 0). A body
      overlapping every slot is discarded (``overlaps_all_actors``).
   d. remove the frames where every actor slot is all zero (``zero_frames``).

Deliberate differences from the lineage (documented, not accidental):

- A body that leaves and re-enters keeps each of its frames at its true time. The lineage
  numbers a body's frames contiguously from its first frame, which shifts the frames after
  a gap; here the gap stays zero (and is removed by step 4d if no one else is there).
- Step 4d tests "all coordinates zero"; the lineage tests "coordinates sum to zero", which
  differs only for frames whose coordinates happen to sum to exactly 0.0.
- If the length filter would drop every body (the lineage crashes there), the body with the
  most frames is kept and ``report.fallback`` says so.
- Motion is computed in float64 (the lineage: float32), which can only reorder bodies whose
  motions tie to float32 precision.
- A file with no body at all (the lineage asserts) gives ``[M, 0, 25, 3]`` and
  ``report.no_bodies = True``; callers decide (these are the official missing-skeleton samples).

Actor slots beyond the bodies found stay zero: one actor gives ``x[1] == 0`` (NTU60 style,
not the NTU120 scripts' duplicate of the lone body).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .constants import NUM_JOINTS, SPINE_MID
from .skeleton_file import SkeletonFile

# Thresholds of maoyunyao/MAMP data/ntu/get_raw_denoised_data.py (noise_len_thres,
# noise_spr_thres1, noise_spr_thres2).
LENGTH_THRESHOLD = 11
"""A body present in this many frames or fewer is noise."""
SPREAD_RATIO = 0.8
"""A frame is noisy when its x-range exceeds this times its y-range."""
NOISE_FRAME_RATIO = 0.69754
"""A body whose share of noisy frames is at least this is noise."""


@dataclass(frozen=True)
class DroppedBody:
    """A body left out of the output, and why.

    Attributes:
        body_id: the 64-bit body ID from the file.
        reason: ``"too_few_frames"``, ``"spread_noise"`` or ``"overlaps_all_actors"``.
        num_frames: frames the body is present in (after dropping empty frames).
        noise_ratio: share of noisy frames (spread filter), else ``None``.
    """

    body_id: int
    reason: str
    num_frames: int
    noise_ratio: Optional[float] = None


@dataclass
class DenoiseReport:
    """Every decision :func:`denoise_skeleton` took for one file.

    Attributes:
        num_frames_in_file: T of the file.
        empty_frames: file frames with no body, dropped first.
        zero_frames: file frames dropped at the end because every actor slot was all zero.
        kept_frames: int64 [T'], the file frame of each output frame.
        motion: body ID -> motion used for ranking (after the spread update).
        dropped_bodies: the bodies left out, with the reason.
        actor_bodies: per actor slot, the body IDs written into it, in writing order.
        fallback: a note when a lineage failure case was handled differently, else ``None``.
        no_bodies: the file holds no body in any frame.
    """

    num_frames_in_file: int
    empty_frames: tuple[int, ...] = ()
    zero_frames: tuple[int, ...] = ()
    kept_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    motion: dict[int, float] = field(default_factory=dict)
    dropped_bodies: tuple[DroppedBody, ...] = ()
    actor_bodies: tuple[tuple[int, ...], ...] = ()
    fallback: Optional[str] = None
    no_bodies: bool = False

    def reason_for(self, body_id: int) -> Optional[str]:
        """The drop reason of ``body_id``, or ``None`` if it was kept."""
        for dropped in self.dropped_bodies:
            if dropped.body_id == int(body_id):
                return dropped.reason
        return None


@dataclass
class _Body:
    body_id: int
    frames: np.ndarray  # int64 [n], indices on the non-empty timeline
    joints: np.ndarray  # float32 [n, 25, 3]
    motion: float

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        return int(self.frames[-1])


def _pooled_motion(joints: np.ndarray) -> float:
    """sum over x, y, z of the variance of ``joints`` [n, 25, 3] pooled over frames and joints."""
    return float(np.sum(np.var(joints.reshape(-1, 3).astype(np.float64), axis=0)))


def _noisy_frames(joints: np.ndarray, spread_ratio: float) -> np.ndarray:
    """bool [n]: x-range > ``spread_ratio`` * y-range, per frame of ``joints`` [n, 25, 3]."""
    x_range = np.ptp(joints[..., 0], axis=1)
    y_range = np.ptp(joints[..., 1], axis=1)
    return x_range > spread_ratio * y_range


def _spread_filter(
    bodies: list[_Body], spread_ratio: float, noise_frame_ratio: float
) -> tuple[list[_Body], list[DroppedBody]]:
    kept = list(bodies)
    dropped: list[DroppedBody] = []
    for body in list(bodies):
        if len(kept) == 1:
            break
        noisy = _noisy_frames(body.joints, spread_ratio)
        num_noisy = int(noisy.sum())
        if num_noisy == 0:
            continue
        ratio = num_noisy / len(body.frames)
        if ratio >= noise_frame_ratio:
            kept.remove(body)
            dropped.append(DroppedBody(body.body_id, "spread_noise", len(body.frames), ratio))
        else:
            body.motion = min(body.motion, _pooled_motion(body.joints[~noisy]))
    return kept, dropped


def _assign_actors(
    ranked: list[_Body], max_actors: int
) -> tuple[list[list[_Body]], list[DroppedBody]]:
    """Place bodies (sorted by motion) into actor slots by the lineage's interval rule."""
    slots: list[list[_Body]] = [[] for _ in range(max_actors)]
    intervals = [[0, 0] for _ in range(max_actors)]
    first = ranked[0]
    slots[0].append(first)
    intervals[0] = [first.start, first.end]
    discarded: list[DroppedBody] = []
    for body in ranked[1:]:
        for slot, (start, end) in enumerate(intervals):
            if min(end, body.end) - max(start, body.start) <= 0:
                slots[slot].append(body)
                intervals[slot] = [min(start, body.start), max(end, body.end)]
                break
        else:
            discarded.append(DroppedBody(body.body_id, "overlaps_all_actors", len(body.frames)))
    return slots, discarded


def denoise_skeleton(
    sk: SkeletonFile,
    max_actors: int = 2,
    *,
    length_threshold: int = LENGTH_THRESHOLD,
    spread_ratio: float = SPREAD_RATIO,
    noise_frame_ratio: float = NOISE_FRAME_RATIO,
) -> tuple[np.ndarray, DenoiseReport]:
    """Select up to ``max_actors`` actors of a skeleton file, as the CTR-GCN/MAMP lineage does.

    Args:
        sk: the parsed file; ``sk.joints[..., :3]`` (metres, NaN where absent) is used.
        max_actors: M, the number of actor slots (2 in the lineage).
        length_threshold, spread_ratio, noise_frame_ratio: the lineage's thresholds.

    Returns:
        ``(x, report)``: ``x`` float32 [M, T', 25, 3], camera-space joints of each actor slot,
        zero where the slot is empty; ``T'`` frames as described in the module docstring
        (``report.kept_frames`` maps them to file frames).
    """
    if max_actors < 1:
        raise ValueError(f"max_actors must be at least 1, not {max_actors}")
    xyz = np.asarray(sk.joints[..., :3], dtype=np.float32)  # [B, T, 25, 3]
    present = np.asarray(sk.present()) & np.isfinite(xyz).all(axis=(2, 3))  # [B, T]
    report = DenoiseReport(num_frames_in_file=int(sk.num_frames))
    nonempty = present.any(axis=0) if present.size else np.zeros(xyz.shape[1], dtype=bool)
    report.empty_frames = tuple(int(t) for t in np.flatnonzero(~nonempty))
    timeline = np.flatnonzero(nonempty)  # file frame of each timeline frame
    if timeline.size == 0:
        report.no_bodies = True
        report.actor_bodies = tuple(() for _ in range(max_actors))
        return np.zeros((max_actors, 0, NUM_JOINTS, 3), dtype=np.float32), report

    # Bodies in order of first appearance (frame, then position in that frame's body list),
    # the order in which the lineage's dict receives them.
    bodies_by_appearance: list[tuple[tuple[int, int], _Body]] = []
    for b in range(xyz.shape[0]):
        frames = np.flatnonzero(present[b, timeline])
        if frames.size == 0:
            continue
        joints = xyz[b, timeline[frames]]
        first_seen = (int(frames[0]), int(sk.body_order[b, timeline[frames[0]]]))
        bodies_by_appearance.append((first_seen, _Body(int(sk.body_ids[b]), frames, joints, _pooled_motion(joints))))
    bodies = [body for _, body in sorted(bodies_by_appearance, key=lambda item: item[0])]
    multi_body = len(bodies) > 1
    dropped: list[DroppedBody] = []

    if multi_body:
        long_enough = [body for body in bodies if len(body.frames) > length_threshold]
        too_short = [body for body in bodies if len(body.frames) <= length_threshold]
        if not long_enough:
            longest = max(bodies, key=lambda body: len(body.frames))
            long_enough = [longest]
            too_short = [body for body in bodies if body is not longest]
            report.fallback = (f"every body has <= {length_threshold} frames; kept the longest, "
                               f"body {longest.body_id} ({len(longest.frames)} frames)")
        dropped += [DroppedBody(body.body_id, "too_few_frames", len(body.frames)) for body in too_short]
        bodies = long_enough
        if len(bodies) > 1:
            bodies, spread_dropped = _spread_filter(bodies, spread_ratio, noise_frame_ratio)
            dropped += spread_dropped
    ranked = sorted(bodies, key=lambda body: body.motion, reverse=True)
    report.motion = {body.body_id: body.motion for body in ranked}
    slots, discarded = _assign_actors(ranked, max_actors)
    dropped += discarded

    x = np.zeros((max_actors, timeline.size, NUM_JOINTS, 3), dtype=np.float32)
    for slot, slot_bodies in enumerate(slots):
        for body in slot_bodies:
            x[slot, body.frames] = body.joints
    keep = np.ones(timeline.size, dtype=bool)
    if multi_body:
        keep = np.any(x != 0, axis=(0, 2, 3))
        report.zero_frames = tuple(int(t) for t in timeline[~keep])
        x = x[:, keep]
    report.kept_frames = timeline[keep].astype(np.int64)
    report.dropped_bodies = tuple(dropped)
    report.actor_bodies = tuple(tuple(body.body_id for body in slot_bodies) for slot_bodies in slots)
    return x, report


def center_on_first_frame(x: np.ndarray, origin_joint: int = SPINE_MID) -> np.ndarray:
    """Translate all actors so that actor 1's ``origin_joint`` in its first non-zero frame is 0.

    The translation step of the lineage's ``seq_transformation.py``: the origin is SpineMid
    (0-based joint 1) of actor 1 in the first frame where actor 1 has a non-zero coordinate;
    it is subtracted from every frame of every actor, and frames where an actor was all
    zero (absent) are set back to zero. If actor 1 is zero everywhere, a copy of ``x`` is
    returned unchanged (the lineage would fail there).

    Args:
        x: float [M, T, V, 3], actor 1 first (e.g. the output of :func:`denoise_skeleton`).

    Returns:
        float32 [M, T, V, 3], a new array.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected an array [M, T, V, 3], got shape {x.shape}")
    out = x.copy()
    if x.shape[0] == 0 or x.shape[1] == 0:
        return out
    actor1_frames = np.flatnonzero(np.any(x[0] != 0, axis=(1, 2)))
    if actor1_frames.size == 0:
        return out
    origin = x[0, actor1_frames[0], origin_joint].copy()  # [3]
    absent = ~np.any(x != 0, axis=(2, 3))  # [M, T]
    out -= origin
    out[absent] = 0.0
    return out
