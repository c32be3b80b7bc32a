"""Vectorised tokenising and exact decimal parsing of a whole text buffer.

Tokens (runs of bytes > 32, or of what ``bytes.split`` does not split at) are the edges
of the whitespace mask, found with ``np.flatnonzero``. Each token is read through a
right-aligned window of its last 12 bytes (16 when more than 1 in 256 tokens are 13 to
16 bytes long), held as 3 (or 4) little-endian ``uint32`` lanes of 4 bytes, laid out
``[lanes, N]`` so that every elementwise step runs over long rows. The lanes are
gathered with one ``np.take`` each from a table of the text's 4-byte words at the 4
byte offsets (:func:`_lane_table`).

1. Bytes before the token and a leading sign are zeroed, the decimal point counts as a
   digit slot of value 0, and the digits are combined within each lane (two SWAR steps:
   byte pairs, then pairs of pairs) and then across lanes into the integer ``A``,
   exactly (``A < 10**15 < 2**53``).
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

MAX_WIDTH = 16
"""Widest window (bytes): tokens of up to 15 bytes after the sign can be regular."""

_LANE = 4  # bytes per uint32 lane
_FRONT = 16  # zero bytes before the text in the lane table: windows may start before it
_POW10 = 10.0 ** np.arange(MAX_WIDTH + 1)
# Indexed by the point's place p (columns right of the point, plus one; 0 without a point):
_SCALE = np.concatenate([[1.0], _POW10])  # 10**(p-1), 1 without a point: the final divisor
_SPLIT = np.concatenate([[1e16], _POW10[1:], [1e17]])  # 10**p, 1e16 (> any A) without one
_LANE_FIRST_COL = (np.arange(MAX_WIDTH // _LANE, dtype=np.int8) * _LANE)[:, None]  # [4, 1]
_BYTE_ONES = np.uint32(0x01010101)  # lane * this: the sum of its 4 bytes in the top byte
_EDGE_BLOCK = 1 << 16  # bytes scanned per np.flatnonzero call
_CACHE_LIMIT = 1 << 24  # bytes; larger buffers are not kept between calls


def _places(lanes: int) -> np.ndarray:
    """uint32 [lanes, 1]: each byte of lane r holds how many window columns lie right of it, plus one."""
    width = lanes * _LANE
    places = width - np.arange(width, dtype=np.uint32).reshape(lanes, _LANE)
    return (places << (8 * np.arange(_LANE, dtype=np.uint32))).sum(axis=1, dtype=np.uint32)[:, None]


_PLACES = {lanes: _places(lanes) for lanes in (3, 4)}


class _Scratch(threading.local):
    """Per-thread arrays reused across calls, grown on demand.

    ``get`` returns a view of the named buffer (raw bytes, viewed as any dtype); a caller
    owns it until it asks for the same name again, so names are shared only between steps
    whose uses do not overlap. Sharing names keeps the parse's memory small enough to
    stay in cache.
    """

    def __init__(self) -> None:
        self.buffers: Dict[str, np.ndarray] = {}
        self.views: Dict[str, Tuple[Tuple[int, ...], type, np.ndarray]] = {}  # the last view

    def get(self, name: str, shape: Tuple[int, ...], dtype: type) -> np.ndarray:
        last = self.views.get(name)
        if last is not None and last[0] == shape and last[1] is dtype:
            return last[2]  # the same request as the last one (a parse asks ~30 times)
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < nbytes:
            buffer = np.empty(nbytes + nbytes // 4 + 64, np.uint8)  # 16-byte aligned: any dtype fits
            if buffer.nbytes > _CACHE_LIMIT:
                self.buffers.pop(name, None)
                self.views.pop(name, None)
                return buffer[:nbytes].view(dtype).reshape(shape)
            self.buffers[name] = buffer
        view = buffer[:nbytes].view(dtype).reshape(shape)
        self.views[name] = (shape, dtype, view)
        return view


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


def _ascii_whitespace(raw: np.ndarray, out: np.ndarray) -> None:
    """Set bool ``out`` [n] where uint8 ``raw`` [n] holds what ``bytes.split`` splits at.

    That is tab, LF, VT, FF, CR (9..13) and space (32); other control bytes stay in tokens.
    """
    shifted = SCRATCH.get("byte_mask_b", raw.shape, np.uint8)  # tokens' edge buffer, free yet
    np.subtract(raw, 9, out=shifted)  # 9..13 -> 0..4, all else wraps above 4 (but 32 -> 23)
    np.less_equal(shifted, 4, out=out)
    out |= np.equal(raw, 32, out=SCRATCH.get("byte_mask_b", raw.shape, bool))


def tokens(raw: np.ndarray, split_like_python: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Token byte ranges: starts, ends int64 [N] (views into scratch, ends exclusive).

    Args:
        raw: uint8 [n], the text.
        split_like_python: split only at the bytes ``bytes.split`` splits at (the tokens are
            then exactly those of ``raw.tobytes().split()``); by default every byte <= 32
            separates tokens, so that stray control bytes never reach the number parser.
    """
    n = raw.size
    space = SCRATCH.get("byte_mask_a", (n + 2,), bool)
    space[0] = space[-1] = True
    if split_like_python:
        _ascii_whitespace(raw, space[1:-1])
    else:
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


def _lane_count(length: np.ndarray) -> int:
    """3 lanes (12-byte windows), or 4 when more than about 1 in 256 tokens are 13 to 16
    bytes long (body IDs, 17 digits, are left to ``float`` either way).

    Args:
        length: uint32 or int64 [N] token lengths.
    """
    sample = length[::7]  # only speed depends on the choice: judge it on a sample (7 is
    # coprime to the 12 fields of a joint line, so every field is sampled)
    longer = np.count_nonzero((sample > 12) & (sample <= MAX_WIDTH))
    return 4 if longer * 256 > sample.size else 3


def _lane_table(raw: np.ndarray) -> Tuple[np.ndarray, int]:
    """The text's 4-byte words at every byte offset, for gathering windows with ``take``.

    Args:
        raw: uint8 [n], the text.

    Returns:
        table uint32 [4 * row] (scratch) and row: element ``j * row + i`` holds text bytes
        ``4 i + j - 16`` to ``4 i + j - 13`` (little-endian, zero outside the text), so
        the word at text offset b (b >= -16) is element ``((b + 16) & 3) * row + ((b + 16) >> 2)``.
    """
    n = raw.size
    row = (n + 2 * _FRONT) // _LANE + 1
    table = SCRATCH.get("byte_mask_a", (_LANE, row * _LANE), np.uint8)  # tokens' mask: free again
    for j in range(_LANE):
        at = _FRONT - j
        table[j, :at] = 0
        table[j, at:at + n] = raw
        table[j, at + n:] = 0
    return table.view("<u4").reshape(-1), row


def _windows(raw: np.ndarray, ends: np.ndarray, lanes: int) -> np.ndarray:
    """uint32 [lanes, N] (scratch): the ``4 * lanes`` bytes before each token end, in lanes."""
    table, row = _lane_table(raw)
    start = SCRATCH.get("base", ends.shape, np.int64)
    np.subtract(ends, lanes * _LANE - _FRONT, out=start)  # window start + 16
    index = SCRATCH.get("lane_index", ends.shape, np.int64)
    np.bitwise_and(start, _LANE - 1, out=index)
    index *= row
    np.right_shift(start, 2, out=start)
    index += start
    words = SCRATCH.get("lanes", (lanes, ends.size), np.uint32)
    for r in range(lanes):
        np.take(table[r:], index, out=words[r], mode="clip")
    return words


def _keep_token_bytes(words: np.ndarray, first_col: np.ndarray) -> None:
    """Zero, in place, the window bytes left of column ``first_col`` (int8 [N]) of each token."""
    lanes = words.shape[0]
    drop = SCRATCH.get("lane_shift", words.shape, np.int8)
    np.subtract(first_col, _LANE_FIRST_COL[:lanes], out=drop)  # bytes to drop from each lane
    negative = np.right_shift(drop, 7, out=SCRATCH.get("lane_sign", words.shape, np.int8))  # -1 or 0
    np.invert(negative, out=negative)
    drop &= negative  # max(drop, 0): np.maximum with a scalar is 8x slower here (no SIMD path)
    drop *= 8  # bits; up to 128, read as uint8 below (more than 32 bits drops the whole lane)
    keep = SCRATCH.get("is_digit", words.shape, np.uint32)  # before the digits are classified
    np.left_shift(np.uint32(0xFFFFFFFF), drop.view(np.uint8), out=keep)  # << 32 or more gives 0
    words &= keep


def _byte_sum(flags: np.ndarray, name: str) -> np.ndarray:
    """uint32 [N] (scratch): per token, the sum of all bytes of its lanes uint32 [lanes, N]
    (each byte small enough that no sum passes 255)."""
    total = SCRATCH.get(name, flags.shape[1:], np.uint32)
    np.add(flags[0], flags[1], out=total)
    for r in range(2, flags.shape[0]):
        total += flags[r]
    total *= _BYTE_ONES
    total >>= 24
    return total


def _lanes_to_float(words: np.ndarray) -> np.ndarray:
    """float64 [N] (scratch): the integer whose decimal digits are the window's bytes.

    Args:
        words: uint32 [lanes, N], one digit 0..9 per byte, the leftmost column the lowest
            byte of lane 0; overwritten.
    """
    # Byte pairs: (v * (10 * 256 + 1)) >> 8 holds 10 * d0 + d1 in the low byte of each
    # 16-bit half (no sum passes 99, so no carry crosses a byte; what overflows 32 bits
    # is dropped or masked off). Then pairs of pairs the same way: 0..9999 per lane, the
    # high half after the shift.
    words *= 10 * 256 + 1
    words >>= 8
    words &= 0x00FF00FF
    words *= 100 * 65536 + 1
    words >>= 16
    words[0] *= 10_000
    words[0] += words[1]  # 8 digits, < 2**32
    value = SCRATCH.get("lane_index", words.shape[1:], np.float64)  # free again after _windows
    if words.shape[0] == 3:
        np.multiply(words[0], 1e4, out=value)
        value += words[2]
    else:
        words[2] *= 10_000
        words[2] += words[3]
        np.multiply(words[0], 1e8, out=value)
        value += words[2]
    return value


def decimals(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Values of the plain decimal tokens ``[+-]digits[.digits]`` (at most 12 bytes, or 16
    with at most 15 after the sign, see :func:`_lane_count`).

    Args:
        raw: uint8 [n], the text.
        starts, ends: int64 [N], token byte ranges.

    Returns:
        values float64 [N] (a scratch view; ``float(token)`` where regular) and
        regular bool [N] (a scratch view).
    """
    n_tokens = starts.size
    if not n_tokens:
        return np.zeros(0), np.zeros(0, bool)
    length = SCRATCH.get("length", (n_tokens,), np.uint32 if raw.size < 2**32 else np.int64)
    np.subtract(ends, starts, out=length, casting="unsafe")
    lanes = _lane_count(length)
    width = lanes * _LANE
    words = _windows(raw, ends, lanes)
    first = SCRATCH.get("first", (n_tokens,), np.uint8)
    np.take(raw, starts, out=first, mode="clip")
    negative = np.equal(first, 45, out=SCRATCH.get("negative", (n_tokens,), bool))  # '-'
    signed = np.equal(first, 43, out=SCRATCH.get("signed", (n_tokens,), bool))  # '+'
    signed |= negative
    # The token's first column, or the one after its sign. Only for tokens longer than
    # the window is it wrong (the difference wraps), and those are irregular anyway: the
    # window cannot hold as many digits and points as they have bytes.
    first_col = SCRATCH.get("first_col", (n_tokens,), np.int8)
    np.subtract(width, length, out=first_col, casting="unsafe")
    first_col += signed
    _keep_token_bytes(words, first_col)
    text = words.view(np.uint8)  # [lanes, 4 N]: the same bytes, for bytewise steps
    is_point = np.equal(text, 46, out=SCRATCH.get("is_point", text.shape, bool))
    np.subtract(text, 48, out=text)
    is_digit = np.less(text, 10, out=SCRATCH.get("is_digit", text.shape, bool))
    np.multiply(text, is_digit.view(np.uint8), out=text)  # the point's slot, like all non-digits, -> 0
    n_digits = _byte_sum(is_digit.view(np.uint32), "n_digits")
    n_points = _byte_sum(is_point.view(np.uint32), "n_points")
    point = is_point.view(np.uint8)
    np.subtract(0, point, out=point)  # 1 -> 0xFF
    point_words = point.view(np.uint32)
    point_words &= _PLACES[lanes]
    q = _byte_sum(point_words, "q")  # q + 1, or 0 without a point
    # Regular: at least one digit, at most one point, and nothing else after the sign
    # (a token longer than the window has more bytes than the window holds).
    symbols = np.add(n_digits, n_points, out=n_digits)  # digits and points in the window
    flag = SCRATCH.get("flag", (n_tokens,), bool)
    regular = np.greater(symbols, n_points, out=SCRATCH.get("regular", (n_tokens,), bool))
    regular &= np.less_equal(n_points, 1, out=flag)
    if lanes == 4:
        regular &= np.less_equal(symbols, MAX_WIDTH - 1, out=flag)  # A < 10**15
    symbols += signed
    regular &= np.equal(symbols, length, out=flag)
    place = SCRATCH.get("length", (n_tokens,), np.int64)  # the lengths are used by now;
    np.copyto(place, q, casting="unsafe")  # int64 indices make take twice as fast
    a = _lanes_to_float(words)
    # A = I * 10**(q+1) + F, I the integer part and F < 10**q the fraction digits (the
    # point's slot is a 0 digit): drop the slot. A / 10**(q+1) = I + F / 10**(q+1) lies
    # less than 0.1 above I, and with A < 10**15 < 2**53 its rounding error is far below
    # 0.9, so the floor of the rounded quotient is I exactly. Without a point the divisor
    # is 1e16 > A: I = 0 and m = A.
    scale = SCRATCH.get("base", (n_tokens,), np.float64)  # free again after _windows
    np.take(_SCALE, place, out=scale, mode="clip")  # 10**q
    high = SCRATCH.get("high", (n_tokens,), np.float64)
    np.take(_SPLIT, place, out=high, mode="clip")  # 10**(q+1)
    np.divide(a, high, out=high)
    np.floor(high, out=high)
    np.multiply(high, scale, out=high)
    high *= 9
    np.subtract(a, high, out=high)  # m = A - 9 * integer part * 10**q
    np.divide(high, scale, out=high)
    sign = np.multiply(negative.view(np.int8), np.int8(-2), out=SCRATCH.get("sign", (n_tokens,), np.int8))
    sign += np.int8(1)
    np.multiply(high, sign, out=high)  # -0.0 for "-0", as float("-0") is (a masked negative is 10x slower)
    return high, regular
