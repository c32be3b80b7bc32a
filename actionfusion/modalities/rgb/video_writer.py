"""A streaming, atomic video writer on PyAV (FFmpeg).

Frames are pushed one at a time and encoded at once, so a video is never held in memory.
The file is written under a temporary name in the target's directory and renamed over
the target by :meth:`VideoWriter.close`; a reader sees no file or the complete one. An
exception inside ``with VideoWriter(...)`` (or :meth:`VideoWriter.abort`) deletes the
temporary file and leaves the target untouched.

Defaults match what NTU-style pipelines expect of a compact copy: H.264 (``libx264``),
``yuv420p``, 30 fps, preset ``ultrafast``, CRF 23. 4:2:0 needs even dimensions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import av
import numpy as np

from actionfusion.io import TMP_PREFIX

PathLike = Union[str, "os.PathLike[str]"]

_CONTAINER_FORMATS = {".avi": "avi", ".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}


class VideoWriter:
    """Encode RGB frames to a video file, atomically.

    Args:
        path: the target file; its suffix picks the container (.avi, .mp4, .mkv, .mov).
        width, height: frame size in pixels (both even for yuv420p).
        fps: frame rate (integer or Fraction).
        codec: FFmpeg encoder name.
        crf: constant rate factor (x264: 0 lossless .. 51 worst).
        preset: encoder speed preset.
        pix_fmt: the encoded pixel format.
        threads: encoder threads (1 keeps a worker process on one core; 0 lets FFmpeg pick).
    """

    def __init__(self, path: PathLike, width: int, height: int, fps: Union[int, Fraction] = 30,
                 codec: str = "libx264", crf: int = 23, preset: str = "ultrafast",
                 pix_fmt: str = "yuv420p", threads: int = 1) -> None:
        self.path = Path(path)
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        suffix = self.path.suffix.lower()
        if suffix not in _CONTAINER_FORMATS:
            raise ValueError(f"unsupported container {suffix!r}; use one of {sorted(_CONTAINER_FORMATS)}")
        self.width, self.height = int(width), int(height)
        self.num_frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + self.path.name + ".", suffix=suffix,
                                   dir=self.path.parent)
        os.close(fd)
        self._tmp: Optional[Path] = Path(tmp)
        try:
            self._container = av.open(str(self._tmp), mode="w", format=_CONTAINER_FORMATS[suffix])
            self._stream = self._container.add_stream(codec, rate=fps)
            self._stream.width, self._stream.height = self.width, self.height
            self._stream.pix_fmt = pix_fmt
            self._stream.thread_count = threads
            if codec in ("libx264", "libx265"):
                self._stream.options = {"preset": preset, "crf": str(crf)}
        except BaseException:
            self._discard()
            raise

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame: uint8 [H, W, 3] RGB of the writer's size."""
        if self._tmp is None:
            raise ValueError(f"{self.path}: writer is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise ValueError(f"{self.path}: expected uint8 frame of shape {(self.height, self.width, 3)}, "
                             f"got {frame.dtype} {frame.shape}")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> None:
        """Flush the encoder, close the file and rename it to :attr:`path`."""
        if self._tmp is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            with open(self._tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Stop without publishing: delete the temporary file, keep any old target."""
        self._discard()

    def _discard(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
