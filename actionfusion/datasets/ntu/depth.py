"""NTU RGB+D depth maps: 16-bit PNG frames in millimetres.

Layout (official README, shahroudy/NTURGB-D@ac2ebc8):

- masked depth: ``nturgb+d_depth_masked/SsssCcccPpppRrrrAaaa/MDepth-%08d.png``;
- full depth: ``nturgb+d_depth/SsssCcccPpppRrrrAaaa/Depth-%08d.png``.

Frames are numbered from 1; each is a 512 x 424 single-channel 16-bit PNG holding the
distance in millimetres. In masked depth, pixels outside the skeleton-based region are 0.

The PNG header's size is read and bounded before a frame is decoded (:func:`read_depth_png`):
a hostile 16000 x 16000 header is refused instead of making the decoder allocate gigabytes.

Gaps in the numbering are not an error by default: :func:`list_depth_frames` returns the
frames that exist in index order, :func:`missing_depth_frames` names the gaps, and
``allow_gaps=False`` turns a gap into a :class:`DepthFormatError`. Each frame's index is
kept (:func:`depth_frame_index`, :func:`iter_depth_frames`), so depth frame ``i`` can still be
matched to skeleton frame ``i`` when frames are missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Union

import cv2
import numpy as np

from ...errors import DepthFormatError
from ...geometry import DEPTH_SIZE_HW
from ..image_header import png_size_hw

PathLike = Union[str, "os.PathLike[str]"]

MASKED_DEPTH_PREFIX = "MDepth-"
FULL_DEPTH_PREFIX = "Depth-"
_FRAME_RE = re.compile(r"^(MDepth|Depth)-(\d+)\.png$", re.IGNORECASE)

MAX_DEPTH_SIZE_FACTOR = 2
"""Without ``check_size``, a depth PNG may be at most this many times the Kinect v2 depth frame
(424 x 512) per side; a larger header is refused before decoding."""


def read_depth_png(path: PathLike, *, check_size: bool = True) -> np.ndarray:
    """Read one depth frame.

    Args:
        path: a 16-bit greyscale PNG.
        check_size: require the Kinect v2 depth size 424 x 512 (H x W).

    Returns:
        uint16 [424, 512] (or [H, W] without ``check_size``), millimetres, 0 = no depth.

    Raises:
        DepthFormatError: the file is missing or unreadable, is not a PNG, is not single-channel
            16-bit, or (with ``check_size``) is not 424 x 512; without ``check_size``, its header
            claims more than :data:`MAX_DEPTH_SIZE_FACTOR` times 424 x 512 per side. The size is
            checked on the header, before anything is decoded.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DepthFormatError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise DepthFormatError(path, "the file is empty")
    _check_header_size(path, bytes(data[:24]), check_size)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DepthFormatError(path, f"not a decodable image: {exc}") from exc
    if image is None:
        raise DepthFormatError(path, "not a decodable image (corrupt or not a PNG)")
    if image.ndim != 2:
        raise DepthFormatError(path, f"expected one channel, found {image.shape[2]}")
    if image.dtype != np.uint16:
        raise DepthFormatError(path, f"expected 16-bit depth, found {image.dtype}")
    if check_size and tuple(image.shape) != DEPTH_SIZE_HW:
        raise DepthFormatError(
            path, f"expected {DEPTH_SIZE_HW[0]}x{DEPTH_SIZE_HW[1]} (HxW), found {image.shape[0]}x{image.shape[1]}"
        )
    return image


def _check_header_size(path: Path, head: bytes, check_size: bool) -> None:
    """Refuse a depth PNG whose IHDR size is not the Kinect's (or, unchecked, beyond the margin)."""
    size = png_size_hw(head)
    if size is None:
        raise DepthFormatError(path, "not a PNG (no PNG signature and IHDR header)")
    height, width = size
    if check_size and size != DEPTH_SIZE_HW:
        raise DepthFormatError(
            path, f"expected {DEPTH_SIZE_HW[0]}x{DEPTH_SIZE_HW[1]} (HxW), found {height}x{width} in the PNG header; "
            "refused before decoding"
        )
    limit = (DEPTH_SIZE_HW[0] * MAX_DEPTH_SIZE_FACTOR, DEPTH_SIZE_HW[1] * MAX_DEPTH_SIZE_FACTOR)
    if not (0 < height <= limit[0] and 0 < width <= limit[1]):
        raise DepthFormatError(
            path, f"the PNG header claims {height}x{width} (HxW), beyond {limit[0]}x{limit[1]} "
            f"({MAX_DEPTH_SIZE_FACTOR} times the Kinect v2 depth frame); refused before decoding"
        )


def depth_frame_index(path: PathLike) -> int:
    """The 1-based frame index in ``MDepth-%08d.png`` / ``Depth-%08d.png``.

    Raises:
        DepthFormatError: the file name is not a depth frame name.
    """
    match = _FRAME_RE.match(Path(path).name)
    if match is None:
        raise DepthFormatError(path, "not a depth frame name (MDepth-%08d.png or Depth-%08d.png)")
    return int(match.group(2))


def list_depth_frames(sample_dir: PathLike, masked: bool = True, *, allow_gaps: bool = True) -> list[Path]:
    """The depth frames of one sample directory, sorted by their 1-based index.

    Only ``MDepth-*.png`` (``masked=True``) or ``Depth-*.png`` (``masked=False``) count;
    other files are ignored. An empty directory gives ``[]``.

    Raises:
        DepthFormatError: ``sample_dir`` is not a directory; two files carry the same index
            (e.g. ``MDepth-1.png`` and ``MDepth-00000001.png``); an index is 0; or, with
            ``allow_gaps=False``, an index between 1 and the last is missing.
    """
    sample_dir = Path(sample_dir)
    if not sample_dir.is_dir():
        raise DepthFormatError(sample_dir, "not a directory of depth frames")
    prefix = MASKED_DEPTH_PREFIX if masked else FULL_DEPTH_PREFIX
    by_index: dict[int, Path] = {}
    for entry in sample_dir.iterdir():
        match = _FRAME_RE.match(entry.name)
        if match is None or match.group(1) + "-" != prefix:
            continue
        index = int(match.group(2))
        if index == 0:
            raise DepthFormatError(entry, "depth frames are numbered from 1")
        if index in by_index:
            raise DepthFormatError(entry, f"frame {index} also stored as {by_index[index].name}")
        by_index[index] = entry
    frames = [by_index[i] for i in sorted(by_index)]
    if not allow_gaps:
        gaps = missing_depth_frames(frames)
        if gaps:
            shown = ", ".join(str(i) for i in gaps[:10]) + (" ..." if len(gaps) > 10 else "")
            raise DepthFormatError(sample_dir, f"{len(gaps)} depth frame(s) missing: {shown}")
    return frames


def missing_depth_frames(frames: list[Path]) -> list[int]:
    """The 1-based indices between 1 and the last index of ``frames`` that have no file."""
    indices = {depth_frame_index(p) for p in frames}
    if not indices:
        return []
    return [i for i in range(1, max(indices) + 1) if i not in indices]


def iter_depth_frames(
    sample_dir: PathLike, masked: bool = True, *, check_size: bool = True, allow_gaps: bool = True
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(index, depth)`` pairs, one frame in memory at a time.

    ``index`` is the 1-based frame number from the file name; ``depth`` is uint16
    [424, 512] in millimetres (see :func:`read_depth_png`).

    Raises:
        DepthFormatError: as :func:`list_depth_frames` and :func:`read_depth_png`.
    """
    for path in list_depth_frames(sample_dir, masked, allow_gaps=allow_gaps):
        yield depth_frame_index(path), read_depth_png(path, check_size=check_size)
