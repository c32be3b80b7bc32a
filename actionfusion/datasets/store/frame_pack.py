"""A frame pack: one file of independently encoded frames with an offsets index.

A clip loader that samples 8 of 100 frames decodes only those 8: each frame is a
self-contained JPEG (RGB, 8-bit) or PNG (16-bit greyscale depth) byte string, found
through an offsets index and read from a memory map.

Layout, format version 2 (all integers little-endian)::

    b"AFPACK02"                          8-byte magic (the format version is its last two digits)
    frame 0 bytes | frame 1 bytes | ...  concatenated encoded frames
    offsets: int64 [n + 1]               absolute file positions; frame i = [off[i], off[i+1])
    crc32: uint32 [n]                    zlib.crc32 of each frame's encoded bytes
    header: UTF-8 JSON                   {"codec", "count", "height", "width", "channels", "dtype"}
    index_pos: int64                     position of the offsets array
    header_len: int64                    length of the JSON header in bytes
    b"AFPKEND1"                          8-byte end magic

Version 1 (magic ``b"AFPACK01"``) is the same without the CRC array; it is still read, its frames
unchecked. Reading a frame of a version-2 pack checks its CRC first, so flipped bits raise a
:class:`~actionfusion.errors.StoreError` naming the file and frame instead of decoding to another
image (a CRC guards against damage, not against a forger; the sample's ``meta.json`` checksums
cover the whole file).

The index sits at the end so a writer can stream frames one at a time without
holding them in memory. Nothing in the file is pickled; the JSON header is data.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from ...errors import StoreError
from ...io import atomic_write
from ..image_header import image_size_hw

FORMAT_VERSION = 2
MAGIC = b"AFPACK02"
MAGICS = {b"AFPACK01": 1, MAGIC: FORMAT_VERSION}
"""Leading magic of each readable format version."""
END_MAGIC = b"AFPKEND1"
MAX_FRAME_SIDE = 4096
"""Largest frame side a pack may declare (``prepare`` bounds its crops at 2048 RGB, 1024 depth)."""
_HEADER_BYTES = (512, 1 << 16)  # bytes searched for a frame image header (PNG IHDR, JPEG SOF): short, then long
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


def decode_frame(data: np.ndarray, codec: str, path: PathLike = "<memory>", index: int = -1,
                 expected_hw: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Decode one frame's bytes (uint8 [nbytes]) to uint8 [H, W, 3] RGB or uint16 [H, W].

    With ``expected_hw``, the size in the frame's image header must equal it, checked before
    decoding (a damaged or hostile header cannot make the decoder allocate more).
    """
    if expected_hw is not None:
        found = image_size_hw(bytes(data[:_HEADER_BYTES[0]]))  # our encoder's SOF lies within ~200 bytes
        if found is None and len(data) > _HEADER_BYTES[0]:
            found = image_size_hw(bytes(data[:_HEADER_BYTES[1]]))
        if found is None:
            raise StoreError(f"{os.fspath(path)}, frame {index}: no readable {codec} image header")
        if found != tuple(expected_hw):
            raise StoreError(f"{os.fspath(path)}, frame {index}: image header claims {found[0]}x{found[1]} (HxW), "
                             f"the pack holds {expected_hw[0]}x{expected_hw[1]}; refused before decoding")
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
        self._crcs: list[int] = []
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
        self._crcs.append(zlib.crc32(data))
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
            handle.write(np.asarray(self._crcs, dtype="<u4").tobytes())
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
    """Random access to the frames of a pack through a read-only memory map (or, given ``data``, the
    pack's bytes in memory; ``path`` then only names it in errors).

    Attributes:
        codec: ``jpeg`` or ``png16``.
        shape: (H, W, 3) for ``jpeg``, (H, W) for ``png16``.
        dtype: numpy dtype of a decoded frame.
    """

    def __init__(self, path: PathLike, data: Optional[bytes] = None) -> None:
        self.path = Path(path)
        if data is not None:  # the pack's bytes already in memory (a sharded store's range read)
            size = len(data)
        else:
            try:
                size = self.path.stat().st_size
            except OSError as err:
                raise StoreError(f"{self.path}: cannot open frame pack ({err})") from err
        if size < len(MAGIC) + _TRAILER.size:
            raise StoreError(f"{self.path}: {size} bytes is too short for a frame pack")
        self._data = (np.frombuffer(data, dtype=np.uint8) if data is not None
                      else np.memmap(self.path, dtype=np.uint8, mode="r"))
        self.version = MAGICS.get(bytes(self._data[: len(MAGIC)]))
        if self.version is None:
            raise StoreError(f"{self.path}: not a frame pack (bad magic at offset 0)")
        index_pos, header_len, end_magic = _TRAILER.unpack(bytes(self._data[size - _TRAILER.size:]))
        if end_magic != END_MAGIC:
            raise StoreError(f"{self.path}: truncated frame pack (no end magic at offset {size - _TRAILER.size})")
        header_pos = size - _TRAILER.size - header_len
        if not len(MAGIC) <= header_pos < size:
            raise StoreError(f"{self.path}, offset {size - _TRAILER.size}: header length {header_len} out of range")
        try:
            header = json.loads(bytes(self._data[header_pos: header_pos + header_len]).decode("utf-8"))
            count = int(header["count"])
            self.codec = str(header["codec"])
            height, width = int(header["height"]), int(header["width"])
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(f"{self.path}, offset {header_pos}: bad frame pack header ({err})") from err
        crc_bytes = 4 * count if self.version >= 2 else 0
        if count < 0 or index_pos + 8 * (count + 1) + crc_bytes != header_pos:
            raise StoreError(f"{self.path}, offset {index_pos}: index size does not match {count} frames")
        crc_pos = index_pos + 8 * (count + 1)
        self.offsets = np.frombuffer(bytes(self._data[index_pos:crc_pos]), dtype="<i8").astype(np.int64)
        self.crcs: Optional[np.ndarray] = (
            np.frombuffer(bytes(self._data[crc_pos:header_pos]), dtype="<u4").astype(np.uint32)
            if self.version >= 2 else None)
        """uint32 [n] CRC-32 of each frame's encoded bytes (None for a version-1 pack)."""
        if count and (self.offsets[0] < len(MAGIC) or np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != index_pos):
            raise StoreError(f"{self.path}, offset {index_pos}: frame offsets are not increasing within the data")
        if not (0 <= height <= MAX_FRAME_SIDE and 0 <= width <= MAX_FRAME_SIDE):
            raise StoreError(f"{self.path}, offset {header_pos}: header declares {height}x{width} frames, "
                             f"beyond {MAX_FRAME_SIDE} per side")
        self.shape: tuple[int, ...] = (height, width, 3) if self.codec == "jpeg" else (height, width)
        self.dtype = np.dtype(np.uint8 if self.codec == "jpeg" else np.uint16)

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def frame_bytes(self, index: int) -> np.ndarray:
        """uint8 [nbytes] view of frame ``index``'s encoded bytes (no copy), CRC-checked.

        Raises:
            IndexError: ``index`` is out of range.
            StoreError: the bytes do not match the frame's recorded CRC-32 (version-2 packs).
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.path}: frame {index} out of range for {n} frames")
        index %= n
        data = self._data[self.offsets[index]: self.offsets[index + 1]]
        if self.crcs is not None:
            crc = zlib.crc32(data)
            if crc != int(self.crcs[index]):
                raise StoreError(f"{self.path}, frame {index} (offset {int(self.offsets[index])}): CRC-32 "
                                 f"{crc:08x} of the frame's bytes, the pack records {int(self.crcs[index]):08x}; "
                                 "the file is damaged")
        return data

    def __getitem__(self, index: int) -> np.ndarray:
        """Decode frame ``index``: uint8 [H, W, 3] RGB or uint16 [H, W]."""
        return decode_frame(self.frame_bytes(index), self.codec, self.path, index,
                            expected_hw=(self.shape[0], self.shape[1]))

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
