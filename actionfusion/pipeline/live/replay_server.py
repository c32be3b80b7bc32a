"""Play a video file as a live MPEG-TS stream over TCP on loopback: a camera stand-in.

``actionfusion stream`` needs a live source to be tried, tested and benchmarked without a camera.
:func:`encode_mpegts` re-encodes a video to H.264 in MPEG-TS once (streamed frame by frame);
:class:`ReplayServer` then serves that file from a separate process to one TCP client at the
video's bitrate, so the frames arrive at about the video's frame rate as from a network camera.
It can also misbehave on purpose: stop sending after some seconds while keeping the connection
open (a stalled camera), or send bytes that are no video (a corrupt stream).

::

    ts = encode_mpegts("clip.avi", "/tmp/clip.ts")
    with ReplayServer(ts, fps=30) as url:       # tcp://127.0.0.1:PORT
        subprocess.run(["actionfusion", "stream", url, "--checkpoint", "work_dirs/x"])
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ...modalities.rgb.video import open_video

PathLike = Union[str, "os.PathLike[str]"]
TS_PACKET = 188
"""Bytes per MPEG-TS packet; the server sends whole packets."""


def encode_mpegts(video: PathLike, out: PathLike, gop: int = 30, repeat: int = 1) -> Path:
    """Re-encode ``video`` to H.264 in an MPEG-TS file (same size and frame rate), frame by frame.

    ``gop``: frames between key frames (a client joining late starts at the next one).
    ``repeat``: play the video this many times in a row (a longer stream from a short clip).
    """
    import av

    with open_video(video) as reader:
        fps = max(1, round(float(reader.fps) or 30.0))
        height, width = (int(v) for v in reader.frame_size)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        with av.open(str(tmp), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width // 2 * 2, height // 2 * 2, "yuv420p"
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop), "crf": "23"}
            for _ in range(max(1, int(repeat))):
                with open_video(video) as again:
                    for image in again.iter_frames():
                        frame = av.VideoFrame.from_ndarray(
                            np.ascontiguousarray(image[: stream.height, : stream.width]), format="rgb24")
                        container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    os.replace(tmp, out)
    return out


def _serve(sock: socket.socket, data: bytes, seconds: float, stall_after: Optional[float], corrupt: bool,
           hold: float) -> None:
    """Accept one client and send ``data`` spread over ``seconds`` (the child process's body)."""
    sock.settimeout(30.0)
    try:
        conn, _ = sock.accept()
    except OSError:
        return
    with conn:
        if corrupt:
            data = np.random.default_rng(0).integers(0, 256, len(data) // 4, dtype=np.uint8).tobytes()
        chunk = TS_PACKET * 32
        rate = len(data) / max(seconds, 1e-3)
        start = time.perf_counter()
        try:
            for offset in range(0, len(data), chunk):
                due = start + offset / rate
                now = time.perf_counter()
                if stall_after is not None and now - start >= stall_after:
                    time.sleep(hold)  # connection open, nothing sent: a stalled camera
                    return
                if due > now:
                    time.sleep(due - now)
                conn.sendall(data[offset: offset + chunk])
        except OSError:
            return  # the client went away


UDP_DATAGRAM = TS_PACKET * 7
"""Bytes per UDP datagram: 7 TS packets (1316 bytes), what MPEG-TS over UDP carries by convention."""


def _send_udp(port: int, data: bytes, seconds: float, delay: float) -> None:
    """Send ``data`` as datagrams to 127.0.0.1:``port`` spread over ``seconds``, after ``delay`` (child body)."""
    time.sleep(delay)  # UDP has no connection: give the receiver time to bind before the first datagram
    rate = len(data) / max(seconds, 1e-3)
    start = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for offset in range(0, len(data), UDP_DATAGRAM):
            due = start + offset / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            sock.sendto(data[offset: offset + UDP_DATAGRAM], ("127.0.0.1", port))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ReplayServer:
    """Serve an MPEG-TS file to one client on ``tcp://127.0.0.1:PORT`` (or push it to
    ``udp://127.0.0.1:PORT``) from a child process.

    Args:
        ts_file: the stream (:func:`encode_mpegts`).
        fps: the video's frame rate; with ``frames`` it sets the sending rate (``frames / fps`` seconds).
        frames: frames in the file (default: counted by decoding it).
        stall_after: stop sending after this many seconds, keeping the connection open for ``hold``.
        corrupt: send random bytes instead of the stream.
        hold: seconds a stalled connection stays open.
        protocol: ``"tcp"`` (the server listens, one client connects) or ``"udp"`` (datagrams to a
            receiver that binds the port, as a camera multicasting MPEG-TS; sending starts after
            ``udp_delay`` seconds and simply stops at the end, so the receiver sees a stall, as from a
            camera that went away). ``stall_after`` and ``corrupt`` apply to TCP only.
        udp_delay: seconds before the first datagram.
    """

    def __init__(self, ts_file: PathLike, fps: float = 30.0, frames: Optional[int] = None,
                 stall_after: Optional[float] = None, corrupt: bool = False, hold: float = 60.0,
                 protocol: str = "tcp", udp_delay: float = 1.0) -> None:
        if protocol not in ("tcp", "udp"):
            raise ValueError(f"protocol must be 'tcp' or 'udp', not {protocol!r}")
        self.protocol, self.udp_delay = protocol, float(udp_delay)
        self.data = Path(ts_file).read_bytes()
        if frames is None:
            with open_video(ts_file) as reader:
                frames = sum(1 for _ in reader.iter_frames())
        self.seconds = frames / fps
        self.stall_after, self.corrupt, self.hold = stall_after, corrupt, hold
        self._process: Optional[multiprocessing.process.BaseProcess] = None
        self._sock: Optional[socket.socket] = None
        self.url = ""

    def start(self) -> str:
        """Listen and start serving (TCP) or start sending after ``udp_delay`` (UDP); returns the URL."""
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        if self.protocol == "udp":
            port = _free_udp_port()
            self.url = f"udp://127.0.0.1:{port}"
            self._process = multiprocessing.get_context(method).Process(
                target=_send_udp, args=(port, self.data, self.seconds, self.udp_delay), daemon=True,
                name="replay-udp")
            self._process.start()
            return self.url
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self.url = f"tcp://127.0.0.1:{self._sock.getsockname()[1]}"
        self._process = multiprocessing.get_context(method).Process(
            target=_serve, args=(self._sock, self.data, self.seconds, self.stall_after, self.corrupt, self.hold),
            daemon=True, name="replay-server")
        self._process.start()
        return self.url

    def stop(self) -> None:
        """Stop the child and close the socket."""
        if self._process is not None:
            self._process.terminate()
            self._process.join(5)
            self._process = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
