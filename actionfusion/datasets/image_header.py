"""Image sizes read from PNG and JPEG headers, so that a reader can bound a frame before decoding it.

A decoder allocates what the header claims: a 16000 x 16000 PNG of a few kilobytes makes
``cv2.imdecode`` allocate gigabytes. Readers of untrusted images call :func:`image_size_hw` first
and refuse a size they do not expect.

Formats (PNG: ISO/IEC 15948, section 5.2-5.3; JPEG: ITU-T T.81, annex B.1-B.2):

- PNG: the 8-byte signature, then the IHDR chunk: length (4), ``b"IHDR"`` (4), width (4, big
  endian), height (4, big endian) at bytes 16..24, bit depth and colour type at 24 and 25.
- JPEG: SOI ``FFD8``, then marker segments ``FF xx`` + a 2-byte big-endian length; the first
  start-of-frame segment (``FFC0``-``FFCF`` except ``C4``, ``C8``, ``CC``) holds precision (1),
  height (2) and width (2).
"""

from __future__ import annotations

import struct
from typing import Optional

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}


def png_size_hw(data: bytes) -> Optional[tuple[int, int]]:
    """(height, width) from a PNG's IHDR chunk, or None if ``data`` does not start like a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(height), int(width)


def jpeg_size_hw(data: bytes, search_limit: int = 1 << 16) -> Optional[tuple[int, int]]:
    """(height, width) from a JPEG's first start-of-frame segment, or None when none is found.

    Only the first ``search_limit`` bytes are scanned (headers precede the image data).
    """
    if not data.startswith(JPEG_SOI):
        return None
    pos, end = 2, min(len(data), search_limit)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2: pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data) or length < 7:
                return None
            height, width = struct.unpack(">HH", data[pos + 5: pos + 9])
            return int(height), int(width)
        if marker in (0xD9, 0xDA) or length < 2:  # end of image, or scan data before any frame header
            return None
        pos += 2 + length
    return None


def image_size_hw(data: bytes) -> Optional[tuple[int, int]]:
    """(height, width) of a PNG or JPEG from its header, or None for another or a broken header."""
    return png_size_hw(data) if data.startswith(PNG_SIGNATURE) else jpeg_size_hw(data)
