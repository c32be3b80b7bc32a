"""The video reader interface and the registry of decoding backends.

See :mod:`actionfusion.modalities.rgb.video` for ``open_video`` and the backends.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from actionfusion.errors import VideoDecodeError
from actionfusion.modalities.rgb.person_crop import Box

SizeHW = tuple[int, int]


class VideoReader(abc.ABC):
    """A decoded video: metadata plus streaming and sparse frame access.

    Attributes:
        path: the file.
        num_frames: frame count *as declared by the container* (e.g. the AVI header). It may be
            an estimate (duration x fps) when the container declares none; iterate to know for sure.
        fps: average frame rate.
        frame_size: (height, width) of the decoded frames in pixels.
    """

    path: Path
    num_frames: int
    fps: float
    frame_size: SizeHW

    @abc.abstractmethod
    def _iter_decoded(self) -> Iterator[object]:
        """Yield backend frames in order, raising VideoDecodeError on failure."""

    @abc.abstractmethod
    def _to_rgb(self, frame: object, crop: Optional[Box], size: Optional[SizeHW]) -> np.ndarray:
        """Convert one backend frame to uint8 [H, W, 3] RGB, cropped and resized."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file and decoder."""

    def iter_frames(
        self, size: Optional[SizeHW] = None, crop: Optional[Box] = None
    ) -> Iterator[np.ndarray]:
        """Stream frames in order.

        Args:
            size: (height, width) to resize to after cropping; None keeps the (cropped) size.
            crop: (x0, y0, x1, y1) in source pixels, end exclusive; parts outside the frame are black.
        Yields:
            uint8 [H, W, 3] RGB frames, each a fresh array.
        """
        crop, size = self._check_request(crop, size)
        for frame in self._iter_decoded():
            yield self._to_rgb(frame, crop, size)

    def read_frames(
        self, indices: Iterable[int], size: Optional[SizeHW] = None, crop: Optional[Box] = None
    ) -> np.ndarray:
        """Decode only the wanted frames (sequential decode, keeping the ones asked for).

        Decoding is sequential from the start, which is exact (no keyframe seeking pitfalls)
        and stops after the largest wanted index. Indices may repeat and come in any order.

        Args:
            indices: 0-based frame indices.
            size, crop: as in :meth:`iter_frames`.
        Returns:
            uint8 [len(indices), H, W, 3] in the order of ``indices``.
        Raises:
            IndexError: a negative index.
            VideoDecodeError: the video ends before the largest index.
        """
        wanted, crop, size, empty = self._check_indices(indices, crop, size)
        if empty is not None:
            return empty
        wanted_set, last = set(wanted), max(wanted)
        kept: dict[int, np.ndarray] = {}
        position = -1
        for position, frame in enumerate(self._iter_decoded()):
            if position in wanted_set:
                kept[position] = self._to_rgb(frame, crop, size)
            if position == last:
                break
        if position < last:
            raise VideoDecodeError(
                self.path, f"frame {last} requested but the video has {position + 1} frames",
                where=f"frame {position + 1}",
            )
        return np.stack([kept[i] for i in wanted])

    def _crop_hw(self, crop: Optional[Box]) -> SizeHW:
        if crop is None:
            return self.frame_size
        return (crop[3] - crop[1], crop[2] - crop[0])

    def _check_request(
        self, crop: Optional[Box], size: Optional[SizeHW]
    ) -> tuple[Optional[Box], Optional[SizeHW]]:
        if crop is not None:
            crop = tuple(int(v) for v in crop)  # type: ignore[assignment]
            if len(crop) != 4 or crop[2] <= crop[0] or crop[3] <= crop[1]:
                raise ValueError(f"crop must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {crop}")
        if size is not None:
            size = (int(size[0]), int(size[1]))
            if size[0] <= 0 or size[1] <= 0:
                raise ValueError(f"size must be a positive (height, width), got {size}")
        return crop, size

    def _check_indices(
        self, indices: Iterable[int], crop: Optional[Box], size: Optional[SizeHW]
    ) -> tuple[list[int], Optional[Box], Optional[SizeHW], Optional[np.ndarray]]:
        """Validate a ``read_frames`` request: (indices, crop, size, the empty result or None).

        Raises:
            IndexError: a negative index.
        """
        wanted = [int(i) for i in indices]
        crop, size = self._check_request(crop, size)
        if not wanted:
            out_h, out_w = size if size is not None else self._crop_hw(crop)
            return wanted, crop, size, np.zeros((0, out_h, out_w, 3), dtype=np.uint8)
        if min(wanted) < 0:
            raise IndexError(f"{self.path}: negative frame index in {wanted}")
        return wanted, crop, size, None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, num_frames={self.num_frames}, "
            f"fps={self.fps:.3f}, frame_size={self.frame_size})"
        )


OpenFn = Callable[[Path, int, bool], VideoReader]
VIDEO_BACKENDS: dict[str, OpenFn] = {}
"""Backend name -> ``open(path, threads, strict) -> VideoReader``."""


def register_video_backend(name: str) -> Callable[[OpenFn], OpenFn]:
    """Decorator registering a backend's open function under ``name``."""

    def decorate(open_fn: OpenFn) -> OpenFn:
        VIDEO_BACKENDS[name] = open_fn
        return open_fn

    return decorate
