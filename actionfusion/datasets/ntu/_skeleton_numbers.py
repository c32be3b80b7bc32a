"""Vectorised tokenising and exact decimal parsing of a whole text buffer.

Tokens (runs of bytes > 32) are the edges of the whitespace mask, found with
``np.flatnonzero``. Each token is read through a right-aligned window of its bytes, laid
out ``[width, N]`` (one row per byte column) so that every elementwise step runs over
long rows; the width fits all but about 1 in 128 tokens, at most :data:`MAX_WIDTH`.

1. Bytes before the token and a leading sign are zeroed, the decimal point counts as a
   digit slot of value 0, and the digit rows are combined pairwise (``uint8 -> uint16 ->
   uint32 -> uint64``) into the integer ``A``, exactly (``A < 10**15 < 2**53``).
2. Removing the point's slot gives the mantissa ``m`` and the count ``q`` of fraction
   digits, both exact; ``m / 10**q`` is one correctly rounded IEEE division of two exact
   doubles, so it equals ``float(token)`` (Clinger's fast path), and its float32 cast
   equals ``np.float32(float(token))`` bit for bit.

Tokens outside that shape (an exponent as in ``-7.257856E-05``, wider than the window,
junk) are flagged irregular for the caller to parse one by one.

All large intermediates live in per-thread scratch buffers that are reused from call to
call: fresh arrays of a few hundred KiB each cost a page fault per 4 KiB on every call,
which made the parse three times slower (measured on the fixture files).
"""

from __future__ import annotations

import math
import threading
from typing import Dict, Tuple

import numpy as np

MAX_WIDTH = 15
"""Widest token (bytes, sign and point included) parsed by the vectorised path."""

_POW10 = 10.0 ** np.arange(MAX_WIDTH + 1)
_COLS = np.arange(16, dtype=np.uint8)[:, None]  # [16, 1] window column index
_EDGE_BLOCK = 1 << 16  # bytes scanned per np.flatnonzero call
_CACHE_LIMIT = 1 << 24  # bytes; larger buffers are not kept between calls


class _Scratch(threading.local):
    """Per-thread arrays reused across calls, grown on demand.

    ``get`` returns a view of the named buffer; a caller owns it until it asks for the
    same name again, so names are shared only between steps whose uses do not overlap.
    """

    def __init__(self) -> None:
        self.buffers: Dict[str, np.ndarray] = {}

    def get(self, name: str, shape: Tuple[int, ...], dtype: type) -> np.ndarray:
        size = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = np.empty(size + size // 4 + 64, dtype)
            if buffer.nbytes <= _CACHE_LIMIT:
                self.buffers[name] = buffer
        return buffer[:size].reshape(shape)


SCRATCH = _Scratch()


def line_ends(raw: np.ndarray) -> np.ndarray:
    """int64 [L]: the position of every ``\\n`` in ``raw`` (uint8 [n])."""
    newline = SCRATCH.get("byte_mask_a", raw.shape, bool)
    np.equal(raw, 10, out=newline)
    return np.flatnonzero(newline)


def control_bytes(raw: np.ndarray) -> np.ndarray:
    """int64 [K]: positions of bytes < 32 other than tab, LF, VT, FF, CR."""
    low = SCRATCH.get("byte_mask_a", raw.shape, bool)
    mid = SCRATCH.get("byte_mask_b", raw.shape, bool)
    np.less(raw, 9, out=low)
    np.greater(raw, 13, out=mid)
    np.logical_and(mid, np.less(raw, 32, out=SCRATCH.get("byte_mask_c", raw.shape, bool)), out=mid)
    np.logical_or(low, mid, out=low)
    return np.flatnonzero(low) if low.any() else np.zeros(0, np.int64)


def tokens(raw: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Token byte ranges: starts, ends int64 [N] (views into scratch, ends exclusive)."""
    n = raw.size
    space = SCRATCH.get("byte_mask_a", (n + 2,), bool)
    space[0] = space[-1] = True
    np.less_equal(raw, 32, out=space[1:-1])
    edge = SCRATCH.get("byte_mask_b", (n + 1,), bool)
    np.not_equal(space[1:], space[:-1], out=edge)
    count = int(np.count_nonzero(edge))  # edges alternate: a token's start, its end, ...
    starts = SCRATCH.get("starts", (count // 2,), np.int64)
    ends = SCRATCH.get("ends", (count // 2,), np.int64)
    done = 0
    for offset in range(0, n + 1, _EDGE_BLOCK):  # small blocks: no fresh pages per call
        found = np.flatnonzero(edge[offset:offset + _EDGE_BLOCK])
        found += offset
        parity = done % 2  # 1 when this block begins inside a token
        first_start, first_end = (done + parity) // 2, (done + 1 - parity) // 2
        starts[first_start:first_start + (found.size + 1 - parity) // 2] = found[parity::2]
        ends[first_end:first_end + (found.size + parity) // 2] = found[1 - parity::2]
        done += found.size
    return starts, ends


def _digit_rows_to_float(digits: np.ndarray) -> np.ndarray:
    """float64 [N]: the integers whose decimal digits are the rows of uint8 [R, N].

    R is a power of two <= 16 and row 0 the most significant digit; the result is exact
    because the integers are < 10**15 < 2**53 here.
    """
    level = digits
    steps = ((np.uint8, 10), (np.uint16, 100), (np.uint32, 10**4), (np.uint64, 10**8))
    for step, (dtype, factor) in enumerate(steps):
        if level.shape[0] == 1:
            break
        rows, n = level.shape[0] // 2, level.shape[1]
        out = SCRATCH.get(f"digits{step}", (rows, n), dtype)
        np.multiply(level[0::2], dtype(factor), out=out)
        np.add(out, level[1::2], out=out)  # adjacent digit groups pair up
        level = out
    result = SCRATCH.get("a", (level.shape[1],), np.float64)
    result[:] = level[0]
    return result


def _window_width(length: np.ndarray) -> int:
    """The narrowest window (<= 15) that all but about 1 in 128 tokens fit.

    Args:
        length: int64 [N] token lengths.

    The rest (body IDs, 17 digits, are the usual ones) are left to ``float``; a window
    sized for them would make every step half as slow again.
    """
    sample = length[::7]  # only speed depends on the choice: judge it on a sample (7 is
    # coprime to the 12 fields of a joint line, so every field is sampled)
    counts = np.bincount(np.minimum(sample, MAX_WIDTH + 1), minlength=MAX_WIDTH + 2)
    longer = np.cumsum(counts[::-1])[::-1]  # longer[w] = tokens of length >= w
    fits = np.flatnonzero(longer[2:MAX_WIDTH + 2] <= sample.size // 128)  # tokens > w + 1
    return int(fits[0]) + 1 if fits.size else MAX_WIDTH


def decimals(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Values of the plain decimal tokens ``[+-]digits[.digits]`` of <= 15 bytes.

    Args:
        raw: uint8 [n], the text.
        starts, ends: int64 [N], token byte ranges.

    Returns:
        values float64 [N] (a scratch view; ``float(token)`` where regular) and
        regular bool [N].
    """
    n_tokens = starts.size
    length = SCRATCH.get("length", (n_tokens,), np.int64)
    np.subtract(ends, starts, out=length)
    width = _window_width(length)
    rows = 1 << max(1, (width - 1).bit_length())  # a power of two >= width
    window = SCRATCH.get("window", (width, n_tokens), np.uint8)
    base = SCRATCH.get("base", (n_tokens,), np.int64)
    np.subtract(ends, width, out=base)  # column k reads raw[end - width + k]
    for k in range(width):
        np.take(raw[k:], base, out=window[k], mode="clip")
    head = int(np.searchsorted(ends, width))  # tokens whose window starts before the text:
    if head:  # raw[k:][base] is not raw[k + base] for base < 0, so redo them
        columns = ends[:head, None] - width + np.arange(width)
        window[:, :head] = np.where(columns >= 0, raw[np.maximum(columns, 0)], 0).T
    first = SCRATCH.get("first", (n_tokens,), np.uint8)
    np.take(raw, starts, out=first, mode="clip")
    negative = np.equal(first, 45, out=SCRATCH.get("negative", (n_tokens,), bool))  # '-'
    signed = np.equal(first, 43, out=SCRATCH.get("signed", (n_tokens,), bool))  # '+'
    signed |= negative
    np.minimum(length, width, out=base)
    first_col = SCRATCH.get("first_col", (n_tokens,), np.uint8)
    np.subtract(width, base, out=first_col, casting="unsafe")  # the token's first column,
    first_col += signed  # or the one after its sign
    in_token = SCRATCH.get("in_token", (width, n_tokens), bool)
    np.greater_equal(_COLS[:width], first_col, out=in_token)
    np.multiply(window, in_token, out=window)  # bytes before the token, and its sign -> 0
    digit_value = SCRATCH.get("digit_value", (width, n_tokens), np.uint8)
    np.subtract(window, 48, out=digit_value)
    is_digit = SCRATCH.get("in_token", (width, n_tokens), bool)  # free again
    np.less(digit_value, 10, out=is_digit)
    is_point = SCRATCH.get("is_point", (width, n_tokens), bool)
    np.equal(window, 46, out=is_point)
    digits = SCRATCH.get("digits", (rows, n_tokens), np.uint8)
    digits[:rows - width] = 0
    np.multiply(digit_value, is_digit, out=digits[rows - width:])
    a = _digit_rows_to_float(digits)  # the point's slot counts as a 0 digit
    n_digits = is_digit.sum(axis=0, dtype=np.uint8, out=SCRATCH.get("n_digits", (n_tokens,), np.uint8))
    n_points = is_point.sum(axis=0, dtype=np.uint8, out=SCRATCH.get("n_points", (n_tokens,), np.uint8))
    np.multiply(is_point, _COLS[width - 1::-1], out=digit_value)  # column -> slots to its right
    point_pos = digit_value.sum(axis=0, dtype=np.uint8, out=first)  # = q when there is one point
    # Regular: fits the window, at least one digit, at most one point, and nothing else
    # (the window holds length - signed non-zero bytes: whitespace ends a token, NUL too).
    n_other = np.subtract(width, first_col, out=first_col)  # = min(length, width) - signed,
    n_other -= n_digits
    n_other -= n_points  # less digits and points: the other bytes
    regular = np.less_equal(length, width, out=SCRATCH.get("regular", (n_tokens,), bool))
    flag = SCRATCH.get("flag", (n_tokens,), bool)
    regular &= np.greater(n_digits, 0, out=flag)
    regular &= np.less_equal(n_points, 1, out=flag)
    regular &= np.equal(n_other, 0, out=flag)
    has_point = np.equal(n_points, 1, out=SCRATCH.get("has_point", (n_tokens,), bool))
    has_point &= regular
    q = SCRATCH.get("base", (n_tokens,), np.int64)  # free again
    np.multiply(point_pos, has_point, out=q)
    scale = SCRATCH.get("scale", (n_tokens,), np.float64)
    np.take(_POW10, q, out=scale, mode="clip")
    # a = integer part * 10**(q+1) + fraction digits (< 10**q): drop the point's slot.
    # floor(a / scale) is exact: a < 10**15 puts a / scale within 0.22 * 10**-q of its
    # true value, closer than the fraction part can come to the next integer.
    high = SCRATCH.get("high", (n_tokens,), np.float64)
    np.divide(a, scale, out=high)
    np.floor(high, out=high)
    np.multiply(high, scale, out=high)
    fraction = SCRATCH.get("fraction", (n_tokens,), np.float64)
    np.subtract(a, high, out=fraction)
    np.divide(high, 10, out=high)
    np.add(high, fraction, out=high)  # the mantissa, where there is a point
    np.copyto(high, a, where=np.logical_not(has_point, out=flag))
    np.divide(high, scale, out=high)
    sign = np.multiply(negative.view(np.int8), np.int8(-2), out=n_digits.view(np.int8))
    sign += np.int8(1)
    np.multiply(high, sign, out=high)  # -0.0 stays -0.0, as float("-0") is
    return high, regular
