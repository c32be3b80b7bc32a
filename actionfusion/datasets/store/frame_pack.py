"""A frame pack: one file of independently encoded frames with an offsets index.

A clip loader that samples 8 of 100 frames decodes only those 8: each frame is a
self-contained JPEG (RGB, 8-bit) or PNG (16-bit greyscale depth) byte string, found
through an offsets index and read from a memory map.

Layout (all integers little-endian)::

    b"AFPACK01"                          8-byte magic
    frame 0 bytes | frame 1 bytes | ...  concatenated encoded frames
    offsets: int64 [n + 1]               absolute file positions; frame i = [off[i], off[i+1])
    header: UTF-8 JSON                   {"codec", "count", "height", "width", "channels", "dtype"}
    index_pos: int64                     position of the offsets array
    header_len: int64                    length of the JSON header in bytes
    b"AFPKEND1"                          8-byte end magic

The index sits at the end so a writer can stream frames one at a time without
holding them in memory. Nothing in the file is pickled; the JSON header is data.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from ...errors import StoreError
from ...io import atomic_write

MAGIC = b"AFPACK01"
END_MAGIC = b"AFPKEND1"
_TRAILER = struct.Struct("<qq8s")

CODECS = ("jpeg", "png16")
"""``jpeg``: uint8 [H, W, 3] RGB frames (stored as baseline JPEG, YCbCr 4:2:0, optimised Huffman tables).
``png16``: uint16 [H, W] frames (depth in mm), lossless 16-bit greyscale PNG."""

PathLike = Union[str, "os.PathLike[str]"]


def encode_frame(frame: np.ndarray, codec: str, jpeg_quality: int = 90, png_compression: int = 3) -> bytes:
    """Encode one frame.

    Args:
        frame: uint8 [H, W, 3] RGB for ``jpeg``; uint16 [H, W] for ``png16``.
        codec: one of :data:`CODECS`.
        jpeg_quality: 1-100, JPEG only.
        png_compression: 0-9 zlib level, PNG only (lossless at every level).
    Returns:
        The encoded bytes.
    """
    if codec == "jpeg":
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"jpeg frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
        # optimised Huffman tables: about 11 % smaller at the same quality (lossless step)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality), cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    elif codec == "png16":
        if frame.dtype != np.uint16 or frame.ndim != 2:
            raise ValueError(f"png16 frames must be uint16 [H, W], got {frame.dtype} {frame.shape}")
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame), [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)])
    else:
        raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
    if not ok:
        raise ValueError(f"cv2.imencode failed for a {codec} frame of shape {frame.shape}")
    return buf.tobytes()


def decode_frame(data: np.ndarray, codec: str, path: PathLike = "<memory>", index: int = -1) -> np.ndarray:
    """Decode one frame's bytes (uint8 [nbytes]) to uint8 [H, W, 3] RGB or uint16 [H, W]."""
    if codec == "jpeg":
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise StoreError(f"{os.fspath(path)}, frame {index}: JPEG bytes do not decode")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if codec == "png16":
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint16 or img.ndim != 2:
            raise StoreError(f"{os.fspath(path)}, frame {index}: PNG bytes are not a 16-bit greyscale image")
        return img
    raise StoreError(f"{os.fspath(path)}: unknown codec {codec!r}")


class FramePackWriter:
    """Stream frames into a frame pack, written atomically (temp file, then rename on close).

    Use as a context manager; an exception inside the ``with`` block leaves no file::

        with FramePackWriter(path, "jpeg", jpeg_quality=90) as pack:
            for frame in frames:          # uint8 [H, W, 3]
                pack.append(frame)
    """

    def __init__(self, path: PathLike, codec: str, jpeg_quality: int = 90, png_compression: int = 3) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
        self.path = Path(path)
        self.codec = codec
        self.jpeg_quality = int(jpeg_quality)
        self.png_compression = int(png_compression)
        self._offsets: list[int] = []
        self._shape: Optional[tuple[int, ...]] = None
        self._ctx: Optional[Any] = None
        self._handle: Optional[IO[bytes]] = None

    def __enter__(self) -> "FramePackWriter":
        self._ctx = atomic_write(self.path, "wb")
        self._handle = self._ctx.__enter__()
        self._handle.write(MAGIC)
        return self

    @property
    def count(self) -> int:
        """Frames appended so far."""
        return len(self._offsets)

    @property
    def nbytes(self) -> int:
        """Encoded frame bytes appended so far (header and index excluded)."""
        assert self._handle is not None
        return self._handle.tell() - len(MAGIC)

    def append(self, frame: np.ndarray) -> int:
        """Encode and append one frame (all frames must share one shape); returns its byte size."""
        if self._handle is None:
            raise RuntimeError("FramePackWriter must be used as a context manager")
        if self._shape is None:
            self._shape = tuple(frame.shape)
        elif tuple(frame.shape) != self._shape:
            raise ValueError(f"frame {self.count} has shape {frame.shape}, the pack holds {self._shape}")
        data = encode_frame(frame, self.codec, self.jpeg_quality, self.png_compression)
        self._offsets.append(self._handle.tell())
        self._handle.write(data)
        return len(data)

    def abort(self) -> None:
        """Discard everything written: the temporary file is removed, ``path`` is untouched."""
        if self._handle is not None and self._ctx is not None:
            self._ctx.__exit__(StoreError, StoreError(f"{self.path}: frame pack aborted"), None)
            self._handle = None

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._handle is None:  # aborted
            return
        assert self._ctx is not None
        if exc_type is None:
            handle = self._handle
            end = handle.tell()
            index_pos = end
            offsets = np.asarray(self._offsets + [end], dtype="<i8")
            handle.write(offsets.tobytes())
            shape = self._shape or (0, 0) + ((3,) if self.codec == "jpeg" else ())
            header = {
                "codec": self.codec,
                "count": len(self._offsets),
                "height": int(shape[0]),
                "width": int(shape[1]),
                "channels": 3 if self.codec == "jpeg" else 1,
                "dtype": "uint8" if self.codec == "jpeg" else "uint16",
            }
            header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
            handle.write(header_bytes)
            handle.write(_TRAILER.pack(index_pos, len(header_bytes), END_MAGIC))
        self._ctx.__exit__(exc_type, exc, tb)
        self._handle = None


def write_frame_pack(path: PathLike, frames: "Iterator[np.ndarray] | Sequence[np.ndarray]", codec: str,
                     jpeg_quality: int = 90, png_compression: int = 3) -> int:
    """Write every frame of ``frames`` to a new pack at ``path``; returns the frame count."""
    with FramePackWriter(path, codec, jpeg_quality, png_compression) as pack:
        for frame in frames:
            pack.append(frame)
        return pack.count


class FramePack:
    """Random access to the frames of a pack through a read-only memory map.

    Attributes:
        codec: ``jpeg`` or ``png16``.
        shape: (H, W, 3) for ``jpeg``, (H, W) for ``png16``.
        dtype: numpy dtype of a decoded frame.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
        except OSError as err:
            raise StoreError(f"{self.path}: cannot open frame pack ({err})") from err
        if size < len(MAGIC) + _TRAILER.size:
            raise StoreError(f"{self.path}: {size} bytes is too short for a frame pack")
        self._data = np.memmap(self.path, dtype=np.uint8, mode="r")
        if bytes(self._data[: len(MAGIC)]) != MAGIC:
            raise StoreError(f"{self.path}: not a frame pack (bad magic at offset 0)")
        index_pos, header_len, end_magic = _TRAILER.unpack(bytes(self._data[size - _TRAILER.size:]))
        if end_magic != END_MAGIC:
            raise StoreError(f"{self.path}: truncated frame pack (no end magic at offset {size - _TRAILER.size})")
        header_pos = size - _TRAILER.size - header_len
        try:
            header = json.loads(bytes(self._data[header_pos: header_pos + header_len]).decode("utf-8"))
            count = int(header["count"])
            self.codec = str(header["codec"])
            height, width = int(header["height"]), int(header["width"])
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(f"{self.path}, offset {header_pos}: bad frame pack header ({err})") from err
        if index_pos + 8 * (count + 1) != header_pos:
            raise StoreError(f"{self.path}, offset {index_pos}: index size does not match {count} frames")
        self.offsets = np.frombuffer(bytes(self._data[index_pos:header_pos]), dtype="<i8").astype(np.int64)
        if count and (self.offsets[0] < len(MAGIC) or np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != index_pos):
            raise StoreError(f"{self.path}, offset {index_pos}: frame offsets are not increasing within the data")
        self.shape: tuple[int, ...] = (height, width, 3) if self.codec == "jpeg" else (height, width)
        self.dtype = np.dtype(np.uint8 if self.codec == "jpeg" else np.uint16)

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def frame_bytes(self, index: int) -> np.ndarray:
        """uint8 [nbytes] view of frame ``index``'s encoded bytes (no copy)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.path}: frame {index} out of range for {n} frames")
        index %= n
        return self._data[self.offsets[index]: self.offsets[index + 1]]

    def __getitem__(self, index: int) -> np.ndarray:
        """Decode frame ``index``: uint8 [H, W, 3] RGB or uint16 [H, W]."""
        return decode_frame(self.frame_bytes(index), self.codec, self.path, index)

    def read(self, frames: Optional[Sequence[int]] = None) -> np.ndarray:
        """Decode the given frames (all if ``None``): uint8 [t, H, W, 3] or uint16 [t, H, W]."""
        indices = range(len(self)) if frames is None else [int(i) for i in frames]
        out = np.empty((len(indices),) + self.shape, dtype=self.dtype)
        for k, i in enumerate(indices):
            frame = self[i]
            if frame.shape != self.shape:
                raise StoreError(f"{self.path}, frame {i}: decoded shape {frame.shape}, header says {self.shape}")
            out[k] = frame
        return out

    def close(self) -> None:
        """Drop the memory map (also happens when the object is collected)."""
        self._data = np.empty(0, dtype=np.uint8)

    def __enter__(self) -> "FramePack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
