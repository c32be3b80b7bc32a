"""Per-person ring buffers: the last T frames of every tracked person's skeleton.

Every processed frame pushes the skeletons of the people tracked in it (``{track id: [V, C]}``);
a person absent from a frame gets a zero row for that frame, as the offline assembly writes zeros
where a track is absent (:func:`~actionfusion.modalities.pose.extract.extract_poses`). The window of
a person is then exactly the offline sequence's frames ``t - T + 1 .. t`` of that track, with zero
frames before the track's first frame: :meth:`PersonWindows.window` equals
``sequence[track, max(0, t - T + 1): t + 1]`` left-padded with zeros (the tests check it).

A person not seen for ``max_missing`` pushed frames is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass
class _Ring:
    frames: np.ndarray  # [T, V, C]
    missing: int = 0  # consecutive frames absent, up to now


class PersonWindows:
    """Ring buffers of ``window`` frames, one per track.

    Args:
        window: T, frames per window.
        num_joints: V.
        channels: C (3: x, y, z).
        max_missing: forget a track after this many consecutive frames without it.
    """

    def __init__(self, window: int, num_joints: int, channels: int = 3, max_missing: int = 30) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window_frames = int(window)
        self.num_joints = int(num_joints)
        self.channels = int(channels)
        self.max_missing = int(max_missing)
        self._rings: dict[int, _Ring] = {}
        self.pushed = 0

    def push(self, people: Mapping[int, np.ndarray]) -> None:
        """Add one frame: ``{track id: float [V, C]}`` of the people in it."""
        slot = self.pushed % self.window_frames
        for tid, skeleton in people.items():
            ring = self._rings.get(int(tid))
            if ring is None:
                ring = _Ring(np.zeros((self.window_frames, self.num_joints, self.channels), np.float32))
                self._rings[int(tid)] = ring
            ring.frames[slot] = skeleton
            ring.missing = 0
        for tid, ring in list(self._rings.items()):
            if tid in people:
                continue
            ring.frames[slot] = 0.0
            ring.missing += 1
            if ring.missing > self.max_missing:
                del self._rings[tid]
        self.pushed += 1

    @property
    def tracks(self) -> list[int]:
        """Ids of the tracks held, in order of first appearance."""
        return list(self._rings)

    def present(self, tid: int) -> bool:
        """Whether the track was in the last pushed frame."""
        ring = self._rings.get(int(tid))
        return ring is not None and ring.missing == 0

    def frames_present(self, tid: int) -> int:
        """Frames of the current window in which the track was present (at most T)."""
        ring = self._rings[int(tid)]
        return int(np.count_nonzero(np.any(ring.frames != 0, axis=(1, 2))))

    def window(self, tid: int) -> np.ndarray:
        """float32 [T, V, C]: the track's last T frames, oldest first (zeros before it appeared and
        where it was absent)."""
        ring = self._rings[int(tid)]
        start = self.pushed % self.window_frames  # the oldest slot
        return np.concatenate([ring.frames[start:], ring.frames[:start]])
