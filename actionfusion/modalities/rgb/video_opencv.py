"""OpenCV backend: ``cv2.VideoCapture``, sequential decoding (a fallback)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from actionfusion.errors import VideoDecodeError
from actionfusion.modalities.rgb.person_crop import Box, crop_box, resize_image
from actionfusion.modalities.rgb.video_reader import SizeHW, VideoReader, register_video_backend


class OpenCVVideoReader(VideoReader):
    """``cv2.VideoCapture`` backend (sequential decoding; the frame count is the container's)."""

    def __init__(self, path: Path, threads: int = 0, strict: bool = True) -> None:
        self.path = path
        self._strict = strict
        capture = self._open_capture()
        try:
            self.num_frames = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
            self.fps = float(capture.get(cv2.CAP_PROP_FPS))
            self.frame_size = (
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            )
        finally:
            capture.release()
        self._captures: list[cv2.VideoCapture] = []

    def _open_capture(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise VideoDecodeError(self.path, "cannot open (cv2.VideoCapture)")
        return capture

    def _iter_decoded(self) -> Iterator[object]:
        capture = self._open_capture()
        self._captures.append(capture)
        count = 0
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                yield bgr
                count += 1
            if count == 0:
                raise VideoDecodeError(self.path, "no frame could be decoded", where="frame 0")
            if self._strict and count < self.num_frames:
                raise VideoDecodeError(
                    self.path, f"stream ended after {count} of {self.num_frames} declared frames",
                    where=f"frame {count}",
                )
        finally:
            capture.release()
            if capture in self._captures:
                self._captures.remove(capture)

    def _to_rgb(self, frame, crop: Optional[Box], size: Optional[SizeHW]) -> np.ndarray:
        bgr = frame if crop is None else crop_box(frame, crop)
        if size is not None:
            bgr = resize_image(bgr, size)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        for capture in self._captures:
            capture.release()
        self._captures.clear()


@register_video_backend("opencv")
def _open_opencv(path: Path, threads: int, strict: bool) -> VideoReader:
    return OpenCVVideoReader(path, threads, strict)
