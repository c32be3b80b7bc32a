"""The NTU ``.skeleton`` reader and writer: exactness, round trips, and malformed input."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actionfusion.datasets.ntu.skeleton_file import (
    BODY_INFO_FIELDS,
    JOINT_FIELDS,
    NUM_JOINTS,
    SkeletonFile,
    read_skeleton_file,
    write_skeleton_file,
)
from actionfusion.datasets.ntu.skeleton_reference import read_skeleton_file_reference
from actionfusion.datasets.ntu._skeleton_limits import MAX_CAMERA_METRES, joint_out_of_bounds
from actionfusion.datasets.ntu._skeleton_parse import parse_careful, parse_well_formed
from actionfusion.errors import SkeletonFormatError

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "ntu"
TWO_BODY = "S001C003P008R002A058"
ARRAYS = ("body_ids", "joints", "body_info", "body_order")


def fixture_files() -> List[Path]:
    files = sorted(FIXTURES.glob("*.skeleton"))
    if not files:
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    return files


def assert_identical(a: SkeletonFile, b: SkeletonFile) -> None:
    assert a.num_frames == b.num_frames
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype.kind == "f":  # bit-exact, NaN where absent in both
            assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), name
        else:
            assert np.array_equal(x, y), name


def make_skeleton(rng: np.random.Generator, order: np.ndarray) -> SkeletonFile:
    """Random finite values for the bodies in ``order`` int [B, T] (-1 absent).

    Bodies must be listed in order of first appearance, as the reader returns them.
    """
    bodies, frames = order.shape
    present = order >= 0
    bits = rng.integers(0, 2**32, (bodies, frames, NUM_JOINTS, len(JOINT_FIELDS)), dtype=np.uint64)
    joints = bits.astype(np.uint32).view(np.float32)  # any float32 bit pattern, subnormals too
    joints[~np.isfinite(joints)] = -0.0
    beyond = joint_out_of_bounds(joints.astype(np.float64))  # keep the sign and mantissa bits in range
    joints[beyond] = np.frexp(joints[beyond])[0].astype(np.float32)
    joints[..., -1] = rng.integers(0, 3, joints.shape[:-1])  # trackingState
    info = rng.normal(size=(bodies, frames, len(BODY_INFO_FIELDS))).astype(np.float32)
    info[..., :6] = rng.integers(0, 4, info[..., :6].shape)
    joints[~present], info[~present] = np.nan, np.nan
    ids = rng.choice(2**40, size=bodies, replace=False).astype(np.int64) + 72057594037927936
    return SkeletonFile(frames, ids, joints, info, order.astype(np.int16))


def random_skeleton(rng: np.random.Generator, frames: int, bodies: int) -> SkeletonFile:
    """Bodies that enter and leave, frames with no body, shuffled positions in each frame."""
    present = np.zeros((bodies, frames), bool)
    for b in range(bodies):
        start = int(rng.integers(0, frames))
        present[b, start:int(rng.integers(start + 1, frames + 1))] = True
    empty = rng.random(frames) < 0.25
    empty[frames // 2] = frames >= 3  # at least one frame with no body
    present[:, empty] = False
    present[~present.any(axis=1), int(np.flatnonzero(~empty)[0]) if (~empty).any() else 0] = True
    order = np.full((bodies, frames), -1, np.int64)
    for t in range(frames):
        here = np.flatnonzero(present[:, t])
        order[rng.permutation(here), t] = np.arange(here.size)
    first = present.argmax(axis=1)  # sort bodies by (first frame, position in it)
    order = order[np.lexsort((order[np.arange(bodies), first], first))]
    return make_skeleton(rng, order)


# ----------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", [p.name for p in sorted(FIXTURES.glob("*.skeleton"))] or ["(none)"])
def test_fast_reader_equals_reference_on_fixtures(name: str) -> None:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    fast = read_skeleton_file(path)
    assert fast.joints.shape == (fast.num_bodies, fast.num_frames, 25, 12)
    assert fast.body_info.shape == (fast.num_bodies, fast.num_frames, 9)
    assert fast.body_order.dtype == np.int16 and fast.body_ids.dtype == np.int64
    assert np.isnan(fast.joints[~fast.present()]).all()
    assert not np.isnan(fast.joints[fast.present()]).any()
    assert_identical(fast, read_skeleton_file_reference(path))


def test_two_body_ids_stay_distinct() -> None:
    path = FIXTURES / f"{TWO_BODY}.skeleton"
    if not path.exists():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    sk = read_skeleton_file(path)
    ids = sorted(sk.body_ids.tolist())
    assert ids == [72057594037944734, 72057594037944738]
    assert float(ids[0]) == float(ids[1])  # what float() parsing (mmaction2) would merge
    assert (sk.present().sum(axis=0) == 2).any()  # both in one frame: really two people
    assert sk.present().all(axis=1).all()


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_fixture_round_trip(tmp_path: Path, newline: str) -> None:
    for path in fixture_files():
        sk = read_skeleton_file(path)
        out = tmp_path / f"{len(newline)}-{path.name}"
        write_skeleton_file(out, sk, newline=newline)
        if newline == "\r\n":  # integers as integers, shortest float32 text, "E-05": byte-identical
            assert out.read_bytes() == path.read_bytes()
        else:
            assert b"\r" not in out.read_bytes()
        assert_identical(read_skeleton_file(out), sk)


@pytest.mark.parametrize("seed", range(4))
def test_random_round_trip(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sk = random_skeleton(rng, frames=int(rng.integers(1, 40)), bodies=int(rng.integers(1, 6)))
    assert sk.present().any(axis=1).all()
    assert (sk.present().sum(axis=0) == 0).any() or sk.num_frames < 3
    for newline in ("\r\n", "\n"):
        write_skeleton_file(tmp_path / "x.skeleton", sk, newline=newline)
        back = read_skeleton_file(tmp_path / "x.skeleton")
        assert_identical(back, sk)
        assert_identical(read_skeleton_file_reference(tmp_path / "x.skeleton"), sk)


def test_results_survive_later_reads(tmp_path: Path) -> None:
    """The reader reuses scratch buffers: what it returned must not change afterwards."""
    first = random_skeleton(np.random.default_rng(21), frames=12, bodies=3)
    write_skeleton_file(tmp_path / "a.skeleton", first)
    kept = read_skeleton_file(tmp_path / "a.skeleton")
    write_skeleton_file(tmp_path / "b.skeleton", random_skeleton(np.random.default_rng(22), frames=30, bodies=2))
    read_skeleton_file(tmp_path / "b.skeleton")
    assert_identical(kept, first)


def test_threads_read_concurrently(tmp_path: Path) -> None:
    """Scratch buffers are per thread: concurrent reads of different files stay exact."""
    records = [random_skeleton(np.random.default_rng(30 + i), frames=20 + 7 * i, bodies=1 + i) for i in range(4)]
    for i, sk in enumerate(records):
        write_skeleton_file(tmp_path / f"{i}.skeleton", sk)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: read_skeleton_file(tmp_path / f"{i % 4}.skeleton"), range(40)))
    for i, result in enumerate(results):
        assert_identical(result, records[i % 4])


def test_no_final_newline_and_empty_recording(tmp_path: Path) -> None:
    sk = random_skeleton(np.random.default_rng(7), frames=5, bodies=2)
    path = tmp_path / "x.skeleton"
    write_skeleton_file(path, sk, newline="\n")
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert_identical(read_skeleton_file(path), sk)
    path.write_bytes(b"2\r\n0\r\n0\r\n")
    empty = read_skeleton_file(path)
    assert empty.num_frames == 2 and empty.num_bodies == 0 and empty.joints.shape == (0, 2, 25, 12)


def test_writer_rejects_inconsistent_input(tmp_path: Path) -> None:
    sk = random_skeleton(np.random.default_rng(1), frames=6, bodies=2)
    path = tmp_path / "x.skeleton"
    bad = [
        SkeletonFile(sk.num_frames, sk.body_ids, sk.joints[:, :, :24], sk.body_info, sk.body_order),
        SkeletonFile(sk.num_frames + 1, sk.body_ids, sk.joints, sk.body_info, sk.body_order),
        SkeletonFile(sk.num_frames, sk.body_ids[[0, 0]], sk.joints, sk.body_info, sk.body_order),
        SkeletonFile(sk.num_frames, sk.body_ids.astype(float), sk.joints, sk.body_info, sk.body_order),
        SkeletonFile(sk.num_frames, sk.body_ids, sk.joints, sk.body_info[..., :8], sk.body_order),
        SkeletonFile(sk.num_frames, sk.body_ids, sk.joints, sk.body_info, np.where(sk.body_order >= 0, 1, -1)),
        SkeletonFile(sk.num_frames, sk.body_ids, np.zeros_like(sk.joints) * np.nan, sk.body_info, sk.body_order),
        SkeletonFile(sk.num_frames, sk.body_ids, np.where(np.isnan(sk.joints), np.nan, np.float32(1e30)), sk.body_info,
                     sk.body_order),
        SkeletonFile(sk.num_frames, sk.body_ids.astype(np.uint64) + np.uint64(2**63), sk.joints, sk.body_info,
                     sk.body_order),
    ]
    for record in bad:
        with pytest.raises(ValueError):
            write_skeleton_file(path, record)
    assert not path.exists()
    with pytest.raises(ValueError):
        write_skeleton_file(path, sk, newline="\r")


# ----------------------------------------------------------------------- malformed input

# Lines of the small file below: 1 frameCount=3; 2 bodyCount=1; 3 body; 4 "25"; 5-29 joints;
# 30 bodyCount=0; 31 bodyCount=2; 32 body A; 33 "25"; 34-58 joints; 59 body B; 60 "25"; 61-85.


def small_file_lines() -> List[bytes]:
    sk = make_skeleton(np.random.default_rng(3), np.array([[0, -1, 0], [-1, -1, 1]]))
    with tempfile.TemporaryDirectory() as tmp:
        write_skeleton_file(Path(tmp) / "s.skeleton", sk)
        return (Path(tmp) / "s.skeleton").read_bytes().split(b"\r\n")[:-1]


def replace_token(line: bytes, index: int, token: bytes) -> bytes:
    fields = line.split()
    fields[index] = token
    return b" ".join(fields)


CORRUPTIONS = {
    "truncated in a joint line": (lambda L: L[:70] + [L[70][:5]], 31),
    "non-numeric joint field": (lambda L: L[:40] + [replace_token(L[40], 3, b"abc")] + L[41:], 41),
    "nan text": (lambda L: L[:6] + [replace_token(L[6], 0, b"nan")] + L[7:], 7),
    "overflow to inf": (lambda L: L[:6] + [replace_token(L[6], 11, b"1e999")] + L[7:], 7),
    "beyond float32": (lambda L: L[:6] + [replace_token(L[6], 4, b"-3.4028236e38")] + L[7:], 7),
    "token strtod would split": (lambda L: L[:60] + [replace_token(L[60], 2, b"1-2")] + L[61:], 61),
    "two points": (lambda L: L[:60] + [replace_token(L[60], 2, b"1.2.3")] + L[61:], 61),
    "13 fields": (lambda L: L[:9] + [L[9] + b" 1"] + L[10:], 10),
    "11 fields": (lambda L: L[:9] + [L[9].rsplit(b" ", 1)[0]] + L[10:], 10),
    "jointCount 24": (lambda L: L[:3] + [b"24"] + L[4:], 4),
    "negative bodyCount": (lambda L: L[:29] + [b"-1"] + L[30:], 30),
    "huge frameCount": (lambda L: [b"100001"] + L[1:], 1),
    "frameCount beyond the lines": (lambda L: [b"90"] + L[1:], 1),
    "bodyCount beyond the lines": (lambda L: L[:30] + [b"3"] + L[31:], 31),
    "duplicate body in a frame": (lambda L: L[:58] + [L[31]] + L[59:], 59),
    "body ID not an integer": (lambda L: L[:2] + [replace_token(L[2], 0, b"7.2e16")] + L[3:], 3),
    "body ID beyond int64": (lambda L: L[:2] + [replace_token(L[2], 0, b"9" * 20)] + L[3:], 3),
    "body line with 9 fields": (lambda L: L[:31] + [L[31].rsplit(b" ", 1)[0]] + L[32:], 32),
    "non-ASCII byte": (lambda L: L[:50] + [L[50][:4] + b"\xc3\xa9" + L[50][4:]] + L[51:], 51),
    "NUL byte": (lambda L: L[:50] + [L[50][:4] + b"\x00" + L[50][4:]] + L[51:], 51),
    "content after the last frame": (lambda L: L + [b"", b"1"], 87),
    "deleted joint line": (lambda L: L[:10] + L[11:], 29),
    "earliest problem wins": (lambda L: L[:6] + [b"x"] + L[7:80] + [b"y"] + L[81:], 7),
    "coordinate 1e30": (lambda L: L[:6] + [replace_token(L[6], 0, b"1e30")] + L[7:], 7),
    "z beyond 100 m": (lambda L: L[:40] + [replace_token(L[40], 2, b"100.5")] + L[41:], 41),
    "colorX far outside the frame": (lambda L: L[:40] + [replace_token(L[40], 5, b"-19201")] + L[41:], 41),
    "bound problem before a structural one": (
        lambda L: L[:6] + [replace_token(L[6], 1, b"-2e5")] + L[7:29] + [b"x"] + L[30:], 7),
    "frameCount of 4301 digits": (lambda L: [b"1" * 4301] + L[1:], 1),
    "body ID of 4301 digits": (lambda L: L[:2] + [replace_token(L[2], 0, b"7" * 4301)] + L[3:], 3),
    "bad body field, then a bad jointCount": (lambda L: L[:2] + [replace_token(L[2], 3, b"0x1")] + [b"0x1"] + L[4:], 3),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_reports_its_line(tmp_path: Path, name: str) -> None:
    mutate, line = CORRUPTIONS[name]
    path = tmp_path / "bad.skeleton"
    path.write_bytes(b"\r\n".join(mutate(small_file_lines())) + b"\r\n")
    for reader in (read_skeleton_file, read_skeleton_file_reference):
        with pytest.raises(SkeletonFormatError) as info:
            reader(path)
        assert info.value.line == line, (reader.__name__, info.value)
        assert str(path) in str(info.value)


def test_physical_bounds_accept_their_edges(tmp_path: Path) -> None:
    """A coordinate exactly at the bound reads back; the corruptions above test just beyond it."""
    lines = small_file_lines()
    lines[6] = replace_token(replace_token(lines[6], 0, b"%g" % MAX_CAMERA_METRES), 5, b"-19200")
    path = tmp_path / "edge.skeleton"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    for reader in (read_skeleton_file, read_skeleton_file_reference):
        sk = reader(path)
        assert sk.joints[0, 0, 2, 0] == MAX_CAMERA_METRES and sk.joints[0, 0, 2, 5] == -19200


def test_numbers_are_float32_of_python_float(tmp_path: Path) -> None:
    """Many decimal shapes (signs, leading zeros, 1-17 digits, "1.", ".5", exponents).

    Coordinates beyond the reader's physical bounds become "0.<digits>"; the orientation and
    tracking fields are unbounded, so every shape is still read there."""
    rng = np.random.default_rng(11)
    tokens = []
    for _ in range(NUM_JOINTS * len(JOINT_FIELDS) * 40):
        digits = "".join(rng.choice(list("0123456789"), size=int(rng.integers(1, 18))))
        point = int(rng.integers(0, len(digits) + 1))
        token = digits[:point] + "." + digits[point:] if rng.random() < 0.8 else digits
        token = rng.choice(["", "-", "+"], p=[0.6, 0.3, 0.1]) + token
        if rng.random() < 0.05:
            token += rng.choice(["e", "E"]) + str(int(rng.integers(-50, 21)))
        token = token if token.strip("+-") != "." else "0"
        field = len(tokens) % len(JOINT_FIELDS)
        if joint_out_of_bounds(np.full(len(JOINT_FIELDS), float(token)))[field]:
            token = (token[0] if token[0] in "+-" else "") + "0." + digits  # coordinates are bounded
        tokens.append(token)
    rows = [" ".join(tokens[i:i + 12]) for i in range(0, len(tokens), 12)]
    lines = ["40"]
    for frame in range(40):
        lines += ["1", "72057594037944734 0 1 1 1 1 0 0.5 -0.5 2", "25"] + rows[frame * 25:(frame + 1) * 25]
    path = tmp_path / "numbers.skeleton"
    path.write_text("\r\n".join(lines))
    expected = np.array([float(t) for t in tokens], dtype=np.float64).astype(np.float32)
    got = read_skeleton_file(path).joints[0].reshape(-1)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert_identical(read_skeleton_file(path), read_skeleton_file_reference(path))


def test_short_tokens_at_the_start_of_the_file(tmp_path: Path) -> None:
    """Tokens within the first bytes read their window partly from before the text."""
    joint = " ".join(["-0.256052000001"] * 11 + ["2"])  # 15 bytes: the widest window
    lines = ["1", "1", "0 0 1 1 1 1 0 0.5 -0.5 2", "25"] + [joint] * NUM_JOINTS
    path = tmp_path / "x.skeleton"
    path.write_text("\r\n".join(lines))
    sk = read_skeleton_file(path)
    assert sk.body_ids.tolist() == [0]
    assert sk.body_info[0, 0].tolist() == [0, 1, 1, 1, 1, 0, 0.5, -0.5, 2]
    assert_identical(sk, read_skeleton_file_reference(path))


def test_memory_bomb_is_refused(tmp_path: Path) -> None:
    """40 bodies spread over 100000 mostly empty frames would need 4.8 GB of joints."""
    body = "0 1 1 1 1 0 0.5 -0.5 2\n25\n" + "0 0 0 0 0 0 0 0 0 0 0 2\n" * NUM_JOINTS
    frames = [f"1\n{i} {body}" for i in range(40)] + ["0\n"] * (100_000 - 40)
    path = tmp_path / "bomb.skeleton"
    path.write_text("100000\n" + "".join(frames))
    for reader in (read_skeleton_file, read_skeleton_file_reference):
        with pytest.raises(SkeletonFormatError) as info:
            reader(path)
        assert info.value.line == 3 + 2 * 28  # the third body line: 3 x 100000 cells > 2**18


def test_empty_and_binary_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.skeleton"
    for data in (b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", bytes(range(256)) * 4, b"   \n"):
        path.write_bytes(data)
        with pytest.raises(SkeletonFormatError) as info:
            read_skeleton_file(path)
        assert info.value.line == 1


# ------------------------------------------------------------- fast path and careful path


def synthetic_crowd() -> SkeletonFile:
    """The synthetic generator's record of a two-person sample, plus a third body that
    enters and leaves, bodies listed in a changing order, and frames with no body (the
    last frame among them)."""
    from actionfusion.datasets.synthetic.render_sample import sample_skeleton, view_sample

    name = "S001C001P001R001A058"  # handshaking: two bodies in every frame
    sk = sample_skeleton(0, name, view_sample(0, name, (0, 40)))
    frames = sk.num_frames
    joints = np.concatenate([sk.joints, sk.joints[:1]])
    joints[2, ..., 0] += 0.5  # the third body half a metre beside the first
    info = np.concatenate([sk.body_info, sk.body_info[:1]])
    present = np.concatenate([sk.present(), np.zeros((1, frames), bool)])
    present[2, 10:20] = True
    present[1, 12:16] = False
    present[:, [3, 4, frames - 1]] = False
    order = np.full((3, frames), -1, np.int16)
    for t in range(frames):
        here = np.flatnonzero(present[:, t])
        order[here, t] = np.arange(here.size)[::-1] if t % 2 else np.arange(here.size)
    joints[~present], info[~present] = np.nan, np.nan
    ids = np.append(sk.body_ids, sk.body_ids.max() + 7)
    return SkeletonFile(frames, ids, joints, info, order)


def parse_both(path: Path) -> tuple:
    """(fast path result or None, careful path result) for the file at ``path``."""
    raw = np.fromfile(path, np.uint8)
    return parse_well_formed(raw), parse_careful(str(path), raw)


def assert_same_parse(fast: tuple, careful: tuple) -> None:
    """Two parse results (T, body_ids, joints, body_info, body_order): identical bits."""
    assert fast[0] == careful[0]
    for x, y in zip(fast[1:], careful[1:]):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def test_fast_path_equals_careful_path(tmp_path: Path) -> None:
    """Every fixture and a synthetic many-body file: the fast path accepts it, and both paths
    (and the reader) give identical arrays."""
    crowd = synthetic_crowd()
    assert (crowd.present().sum(axis=0) == 0).sum() == 3 and (crowd.present().sum(axis=0) == 3).any()
    paths = list(sorted(FIXTURES.glob("*.skeleton")))
    for newline in ("\r\n", "\n"):
        paths.append(tmp_path / f"crowd-{len(newline)}.skeleton")
        write_skeleton_file(paths[-1], crowd, newline=newline)
    for path in paths:
        fast, careful = parse_both(path)
        assert fast is not None, path.name
        assert_same_parse(fast, careful)
        assert_identical(read_skeleton_file(path), SkeletonFile(*careful))
    assert_identical(read_skeleton_file(paths[-1]), crowd)


def test_unusual_legal_spellings(tmp_path: Path) -> None:
    """Legal but unusual spellings read as the reference reads them: the fast path takes
    tabs, exponents and blank lines after the last frame, and leaves signed or zero-padded
    counts and IDs to the careful path."""
    lines = small_file_lines()
    variants = {
        "plus count": ([b"+3"] + lines[1:], False),
        "zero-padded body ID": (lines[:2] + [b"0" + lines[2]] + lines[3:], False),
        "blank lines at the end": (lines + [b"", b"  "], True),
        "tab separators": (lines[:6] + [lines[6].replace(b" ", b"\t")] + lines[7:], True),
        "exponent": (lines[:6] + [replace_token(lines[6], 8, b"-7.257856E-05")] + lines[7:], True),
    }
    for name, (variant, fast_path) in variants.items():
        path = tmp_path / "legal.skeleton"
        path.write_bytes(b"\r\n".join(variant) + b"\r\n")
        fast, careful = parse_both(path)
        assert (fast is not None) == fast_path, name
        if fast is not None:
            assert_same_parse(fast, careful)
        assert_identical(read_skeleton_file(path), read_skeleton_file_reference(path))


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_malformed_files_take_the_careful_path(tmp_path: Path, name: str) -> None:
    """The fast path never accepts a malformed file, so the error is the careful path's."""
    mutate, line = CORRUPTIONS[name]
    path = tmp_path / "bad.skeleton"
    path.write_bytes(b"\r\n".join(mutate(small_file_lines())) + b"\r\n")
    raw = np.fromfile(path, np.uint8)
    assert parse_well_formed(raw) is None
    with pytest.raises(SkeletonFormatError) as careful:
        parse_careful(str(path), raw)
    with pytest.raises(SkeletonFormatError) as reader:
        read_skeleton_file(path)
    assert type(reader.value) is type(careful.value) and str(reader.value) == str(careful.value)
    assert reader.value.line == careful.value.line == line


# ----------------------------------------------------------------------------- fuzzing

JUNK = [b"", b"x", b"nan", b"inf", b"-inf", b"1e999", b"-", b"+", b".", b"-.", b"1.2.3", b"1-2",
        b"0x10", b"1_0", b"1e", b"1e+", b"\xff\xfe", b"9" * 25, b"-0", b"+.5", b"1.E-05", b"\x00",
        b"72057594037944734", b"-1", b"65", b"100001", b"25", b"0", b"1" * 16]


def fuzz_base() -> bytes:
    """The two-body fixture cut to 4 frames (small, so that mutations reach every part)."""
    path = FIXTURES / f"{TWO_BODY}.skeleton"
    if path.exists():
        sk = read_skeleton_file(path)
        t = slice(0, 4)
        sk = SkeletonFile(4, sk.body_ids, sk.joints[:, t], sk.body_info[:, t], sk.body_order[:, t])
    else:
        sk = random_skeleton(np.random.default_rng(0), frames=4, bodies=2)
    with tempfile.TemporaryDirectory() as tmp:
        write_skeleton_file(Path(tmp) / "base.skeleton", sk)
        return (Path(tmp) / "base.skeleton").read_bytes()


BASE = fuzz_base()


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = BASE
    for _ in range(draw(st.integers(1, 3))):
        lines = data.split(b"\n")
        kind = draw(st.sampled_from(["truncate", "delete", "duplicate", "token", "count", "flip", "lf", "random"]))
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        if kind == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif kind == "delete":
            data = b"\n".join(lines[:at] + lines[at + 1:])
        elif kind == "duplicate":
            data = b"\n".join(lines[:at + 1] + lines[at:])
        elif kind in ("token", "count"):
            fields = lines[at].split() or [b""]
            i = draw(st.integers(0, len(fields) - 1))
            fields[i] = draw(st.sampled_from(JUNK) if kind == "token" else
                             st.integers(-5, 10**7).map(lambda n: str(n).encode()))
            lines[at] = b" ".join(fields) + (b"\r" if lines[at].endswith(b"\r") else b"")
            data = b"\n".join(lines)
        elif kind == "flip" and data:
            buf = bytearray(data)
            for _ in range(draw(st.integers(1, 4))):
                buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
            data = bytes(buf)
        elif kind == "lf":
            data = data.replace(b"\r\n", b"\n")
        elif kind == "random":
            data = draw(st.binary(max_size=200))
    return data


_FUZZ_TMP = tempfile.TemporaryDirectory(prefix="skeleton-fuzz-")  # removed at exit
FUZZ_DIR = Path(_FUZZ_TMP.name)


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_files())
def test_fuzzed_files_parse_or_raise_the_typed_error(data: bytes) -> None:
    path = FUZZ_DIR / "fuzz.skeleton"
    path.write_bytes(data)
    outcomes = []
    for reader in (read_skeleton_file, read_skeleton_file_reference):
        try:
            outcomes.append(reader(path))
        except SkeletonFormatError as error:
            assert isinstance(error.line, int) and error.line >= 1
            assert str(path) in str(error)
            outcomes.append(error.line)
    fast, reference = outcomes
    if isinstance(fast, SkeletonFile) and isinstance(reference, SkeletonFile):
        assert_identical(fast, reference)
    else:  # both fail, at the same earliest line
        assert fast == reference
