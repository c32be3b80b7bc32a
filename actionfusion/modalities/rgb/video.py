"""Video decoding behind one small interface, with streaming crop and resize.

``open_video(path, backend="pyav")`` returns a :class:`VideoReader`. Frames stream out
one at a time (a whole 1080p video is never held in memory), optionally cropped to a
box ``(x0, y0, x1, y1)`` in source pixels and resized to ``size = (height, width)``.

Backends live in :data:`VIDEO_BACKENDS`, one module each (``video_pyav``, ``video_decord``,
``video_opencv``); adding one is a :class:`VideoReader` subclass (``_iter_decoded``,
``_to_rgb``, ``close``) and one decorated function:

    @register_video_backend("mine")
    def _open_mine(path: Path, threads: int, strict: bool) -> VideoReader: ...

* ``"pyav"`` (default): FFmpeg through PyAV with frame-threaded decoding. For 4:2:0 video
  it crops and resizes the Y, U and V planes *before* colour conversion, so only the
  small crop is ever converted to RGB. On the 1080p NTU fixture (2 shared cores), decode
  + crop 600x600 + resize to 224x224 this way takes 1.3x the time of decoding alone, while
  converting the whole frame to RGB first and cropping with cv2 takes 1.2-1.7x longer
  than this path; libswscale's ``reformat(width, height)`` (resize only, no crop) was also
  slower (0.33 s against 0.20 s for the 103 frames). See benchmarks/bench_rgb_prepare.py.
* ``"decord"``: optional (``pip install decord``), imported lazily. Streams in chunks of
  ``get_batch``. It cannot report a truncated file: it only knows the frames it indexed.
* ``"opencv"``: ``cv2.VideoCapture``; sequential only, slower; a fallback.

Every failure to open or decode raises :class:`~actionfusion.errors.VideoDecodeError`
naming the file and, while decoding, the frame.
"""

from __future__ import annotations

import os
from pathlib import Path

from actionfusion.errors import VideoDecodeError
from actionfusion.modalities.rgb import video_decord, video_opencv, video_pyav  # noqa: F401 (register backends)
from actionfusion.modalities.rgb.video_decord import DecordVideoReader
from actionfusion.modalities.rgb.video_opencv import OpenCVVideoReader
from actionfusion.modalities.rgb.video_pyav import PyAVVideoReader
from actionfusion.modalities.rgb.video_reader import (
    VIDEO_BACKENDS,
    SizeHW,
    VideoReader,
    register_video_backend,
)

__all__ = [
    "VIDEO_BACKENDS",
    "DecordVideoReader",
    "OpenCVVideoReader",
    "PyAVVideoReader",
    "SizeHW",
    "VideoReader",
    "open_video",
    "register_video_backend",
]


MAX_FRAME_SIDE = 8192
"""Largest frame side a video may declare (8K); checked from the container header before decoding."""


def open_video(
    path: "os.PathLike[str] | str", backend: str = "pyav", threads: int = 0, strict: bool = True
) -> VideoReader:
    """Open a video for decoding.

    Args:
        path: the video file.
        backend: a key of :data:`VIDEO_BACKENDS` ("pyav", "decord", "opencv").
        threads: decoder threads; 0 lets the backend choose.
        strict: (pyav) raise VideoDecodeError when the stream ends before the frame count the
            container declares, which is how a truncated file shows itself.
    Returns:
        an open :class:`VideoReader`; use it as a context manager or call ``close()``.
    Raises:
        VideoDecodeError: missing, empty or undecodable file.
        ValueError: unknown backend.
    """
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; known: {sorted(VIDEO_BACKENDS)}")
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(path, "file not found")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty")
    reader = VIDEO_BACKENDS[backend](path, int(threads), bool(strict))
    height, width = (int(v) for v in reader.frame_size)
    if not (0 < height <= MAX_FRAME_SIDE and 0 < width <= MAX_FRAME_SIDE):
        reader.close()
        raise VideoDecodeError(path, f"the container declares {width}x{height} frames, outside 1..{MAX_FRAME_SIDE} "
                                     "per side: refused before decoding (a damaged or hostile file?)")
    return reader
