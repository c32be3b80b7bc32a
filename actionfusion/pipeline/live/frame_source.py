"""Live frames from a webcam, a network stream or a file, decoded by a thread.

``SOURCE`` is one of:

* a webcam index (``0``, ``1``, ...): OpenCV ``VideoCapture``;
* a URL (``rtsp://``, ``rtmp://``, ``http(s)://``, ``tcp://``, ``udp://``, ``srt://``): FFmpeg through
  PyAV, with a read timeout so that a silent server cannot hang the reader;
* a file path: the library's PyAV reader (:func:`~actionfusion.modalities.rgb.video.open_video`).

A decode thread reads frames as fast as the source gives them and hands them over through a
:class:`FrameMailbox`. In *latest* mode (live sources) the mailbox holds one frame: a frame the
consumer has not taken when the next one arrives is replaced and counted as dropped, so a
consumer slower than the camera stays on the newest frame instead of drifting behind. In *queue*
mode (a file processed as fast as possible) nothing is dropped and the decoder waits.

A file can be played *as a live source* (``realtime=True``): frames are released at the file's
frame rate, as a camera would deliver them, and the latest-frame policy applies.

The stream ends when the source ends (end of file, the server closing the connection), or when no
frame arrived for ``stall_timeout`` seconds after the first one (``stalled`` is then set); both end
the iteration cleanly. A source that cannot be opened, that sends undecodable data, or that gives
no frame at all within ``stall_timeout`` raises :class:`~actionfusion.errors.VideoDecodeError`, one
line naming it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ...errors import VideoDecodeError

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "tcp", "udp", "srt", "rtp")
"""URL schemes read through FFmpeg."""


@dataclass(frozen=True)
class LiveFrame:
    """One delivered frame.

    Attributes:
        index: the frame's position in the source (0-based, counting dropped frames).
        image: uint8 [H, W, 3] RGB.
        arrived: ``time.perf_counter()`` when the decoder produced it (latency is measured from here).
        scale: source pixels per pixel of ``image`` (> 1 when decoding scaled it down).
    """

    index: int
    image: np.ndarray
    arrived: float
    scale: float = 1.0


def source_kind(source: str) -> str:
    """``"camera"``, ``"url"`` or ``"file"`` for a SOURCE string."""
    text = str(source).strip()
    if re.fullmatch(r"\d+", text):
        return "camera"
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if match and match.group(1).lower() in URL_SCHEMES:
        return "url"
    return "file"


class FrameMailbox:
    """Hand-over between the decode thread and the consumer (module docstring).

    Args:
        latest_only: keep only the newest frame (count the replaced ones as dropped); otherwise a
            queue of ``capacity`` frames that blocks the producer when full.
        capacity: queue length in queue mode.
    """

    def __init__(self, latest_only: bool, capacity: int = 8) -> None:
        self.latest_only = bool(latest_only)
        self.capacity = max(1, int(capacity))
        self._items: list[LiveFrame] = []
        self._closed = False
        self._error: Optional[BaseException] = None
        self._cond = threading.Condition()
        self.produced = 0
        self.dropped = 0

    def put(self, frame: LiveFrame, stop: threading.Event) -> bool:
        """Hand a frame over; False when the consumer has gone (``stop`` set)."""
        with self._cond:
            if self.latest_only:
                if self._items:
                    self.dropped += len(self._items)
                self._items = [frame]
            else:
                while len(self._items) >= self.capacity and not stop.is_set():
                    self._cond.wait(0.1)
                if stop.is_set():
                    return False
                self._items.append(frame)
            self.produced += 1
            self._cond.notify_all()
            return True

    def close(self, error: Optional[BaseException] = None) -> None:
        """The producer is done (``error``: why it failed)."""
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def get(self, timeout: float) -> Optional[LiveFrame]:
        """The next frame; None at the end of the stream. Raises the producer's error, or
        TimeoutError when nothing arrived for ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    if self._error is not None:
                        raise self._error
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self._cond.wait(left)
            frame = self._items.pop(0)
            self._cond.notify_all()
            return frame


def decoded_size(height: int, width: int, max_height: int) -> Optional[tuple[int, int]]:
    """(height, width) scaled down, evenly, to at most ``max_height`` rows; None: keep the size."""
    if max_height <= 0 or height <= max_height:
        return None
    scale = max_height / height
    return max(2, int(round(height * scale)) // 2 * 2), max(2, int(round(width * scale)) // 2 * 2)


def _camera_frames(index: int, where: str, max_height: int) -> Iterator[tuple[np.ndarray, float]]:
    import cv2

    capture = cv2.VideoCapture(index)
    try:
        if not capture.isOpened():
            raise VideoDecodeError(where, "cannot open the camera: check the index and that no other program uses it")
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            height = bgr.shape[0]
            size = decoded_size(height, bgr.shape[1], max_height)
            if size is not None:
                bgr = cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), height / bgr.shape[0]
    finally:
        capture.release()


def _url_frames(url: str, read_timeout: float, max_height: int) -> Iterator[tuple[np.ndarray, float]]:
    import av

    # rw_timeout (microseconds) bounds every network read, the opening probe included; a small
    # probe (1 MB, 0.5 s) starts a live stream sooner and gives up on garbage sooner. (FFmpeg's
    # fflags=nobuffer lost the first group of pictures of the loopback MPEG-TS stream: not used.)
    options = {"rw_timeout": str(int(read_timeout * 1e6)), "probesize": "1000000", "analyzeduration": "500000"}
    try:
        container = av.open(url, options=options, timeout=read_timeout)
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(url, f"cannot open the stream: {exc}") from None
    try:
        if not container.streams.video:
            raise VideoDecodeError(url, "the stream has no video track")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                size = decoded_size(frame.height, frame.width, max_height)
                # swscale scales and converts in one pass: cheaper than converting the full frame
                if size is None:
                    yield frame.to_ndarray(format="rgb24"), 1.0
                else:
                    yield frame.to_ndarray(width=size[1], height=size[0], format="rgb24"), frame.height / size[0]
        except av.error.EOFError:
            return
        except av.error.FFmpegError as exc:
            if index < 0:
                raise VideoDecodeError(url, f"cannot decode the stream: {exc}", where="frame 0") from None
            raise VideoDecodeError(url, f"the stream broke off: {exc}", where=f"frame {index + 1}") from None
    finally:
        container.close()


def _file_frames(path: str, video_backend: str, max_height: int) -> Iterator[tuple[np.ndarray, float]]:
    from ...modalities.rgb.video import open_video

    with open_video(path, backend=video_backend) as video:
        size = decoded_size(*video.frame_size, max_height)
        scale = video.frame_size[0] / size[0] if size is not None else 1.0
        for image in video.iter_frames(size=size):
            yield image, scale


def _file_fps(path: str) -> float:
    from ...modalities.rgb.video import open_video

    with open_video(path) as video:
        return float(video.fps) or 30.0


class LiveFrameSource:
    """Iterate the frames of SOURCE as they arrive (module docstring).

    Args:
        source: a webcam index, a URL or a file path.
        realtime: for a file: release frames at the file's frame rate and keep only the newest
            (as a camera); False: every frame, as fast as the consumer takes them. Webcams and URLs
            are always live.
        stall_timeout: seconds without a frame after which the stream is taken as stalled and ends.
        read_timeout: seconds a network read may block (opening included); default ``stall_timeout``
            + 1, so that a silent source ends as a stall (cleanly) rather than as a read error.
        max_height: frames taller than this are scaled down while decoding (0: full size). The pose
            model resizes every frame to its own input size anyway; a 1080p frame scaled to 540 rows
            in the decoder costs less than converting it whole, and so does everything after.
        video_backend: decoder of files.

    Attributes:
        stats: ``{"decoded", "delivered", "dropped", "stalled"}`` after (or during) iteration.
    """

    def __init__(self, source: str, realtime: bool = True, stall_timeout: float = 10.0,
                 read_timeout: Optional[float] = None, max_height: int = 540, video_backend: str = "pyav") -> None:
        self.source = str(source)
        self.kind = source_kind(self.source)
        if self.kind == "file" and not Path(self.source).is_file():
            raise VideoDecodeError(self.source, "no such file (give a webcam index, a stream URL or a video file)")
        self.live = self.kind != "file" or bool(realtime)
        self.pace_fps = _file_fps(self.source) if self.kind == "file" and realtime else 0.0
        self.stall_timeout = float(stall_timeout)
        self.read_timeout = float(read_timeout) if read_timeout is not None else self.stall_timeout + 1.0
        self.max_height = int(max_height)
        self.video_backend = video_backend
        self.delivered = 0
        self.stalled = False
        self._mailbox: Optional[FrameMailbox] = None

    @property
    def stats(self) -> dict:
        box = self._mailbox
        return {"decoded": box.produced if box else 0, "delivered": self.delivered,
                "dropped": box.dropped if box else 0, "stalled": self.stalled}

    def _frames(self) -> Iterator[tuple[np.ndarray, float]]:
        """(uint8 [H, W, 3] RGB, source pixels per pixel) per frame."""
        if self.kind == "camera":
            return _camera_frames(int(self.source), f"camera {self.source}", self.max_height)
        if self.kind == "url":
            return _url_frames(self.source, self.read_timeout, self.max_height)
        return _file_frames(self.source, self.video_backend, self.max_height)

    def __iter__(self) -> Iterator[LiveFrame]:
        box = FrameMailbox(latest_only=self.live)
        self._mailbox = box
        stop = threading.Event()

        def decode() -> None:
            error: Optional[BaseException] = None
            try:
                start = time.perf_counter()
                for index, (image, scale) in enumerate(self._frames()):
                    if self.pace_fps > 0:
                        wait = start + index / self.pace_fps - time.perf_counter()
                        if wait > 0:
                            stop.wait(wait)
                    if stop.is_set() or not box.put(LiveFrame(index, image, time.perf_counter(), scale), stop):
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
                error = exc
            finally:
                box.close(error)

        thread = threading.Thread(target=decode, name="live-decode", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    frame = box.get(self.stall_timeout)
                except TimeoutError:
                    if self.delivered == 0:
                        raise VideoDecodeError(self.source, f"no video frame arrived within {self.stall_timeout:g} s: "
                                               "check that the source sends video (and the URL or camera index)",
                                               where="frame 0") from None
                    self.stalled = True
                    return
                if frame is None:
                    return
                self.delivered += 1
                yield frame
        finally:
            stop.set()
            # a decoder blocked in a network read returns within read_timeout; do not wait for it
            thread.join(timeout=0.5)
