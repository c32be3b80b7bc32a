"""Hostile and damaged files: malformed .skeleton files in a batch job, hostile checkpoints, hostile
pyskl pickles (code is never the question here: --trust-pickle is given; their *paths* are), damaged
stores, and inputs whose names collide. Each ends in the typed one-line error or the correct result,
and writes nothing outside its outputs."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from test_skeleton_file import CORRUPTIONS, small_file_lines

from .harness import Case, Env, check_case

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]


def _first_skeleton(env: Env) -> Path:
    return sorted((env.raw / "nturgb+d_skeletons").glob("*.skeleton"))[0]


# ----------------------------------------------------------------------------- malformed .skeleton in a batch job


def _root_with_bad_skeleton(mutate: Callable[[List[bytes]], List[bytes]]) -> Callable[[Env], None]:
    """A root holding one good sample and one corrupted one (S001C001P001R001A002)."""

    def setup(env: Env) -> None:
        folder = env.case / "root" / "nturgb+d_skeletons"
        folder.mkdir(parents=True)
        shutil.copy(_first_skeleton(env), folder)
        bad = b"\r\n".join(mutate(small_file_lines())) + b"\r\n"
        (folder / "S009C001P001R001A002.skeleton").write_bytes(bad)

    return setup


def _one_failed(stdout: str, env: Env) -> None:
    report = json.loads(stdout)
    assert report["num_failed"] == 1 and report["num_done"] == 1, report
    assert report["failures"][0][0] == "S009C001P001R001A002", report["failures"]
    failures = json.loads((env.case / "out" / "failures.json").read_text())
    assert "S009C001P001R001A002" in json.dumps(failures)


SKELETON_CASES = [
    Case(f"prepare-skeleton-{name.replace(' ', '-')}",
         lambda e: ["prepare", "root", "--out", "out", "--modalities", "skeleton", "--workers", "0", "--json", "--quiet"],
         setup=_root_with_bad_skeleton(mutate), status=0, stdout_check=_one_failed, outputs=("out",))
    for name, (mutate, _line) in sorted(CORRUPTIONS.items())
] + [
    Case("prepare-skeleton-strict", lambda e: ["prepare", "root", "--out", "out", "--modalities", "skeleton",
                                               "--workers", "0", "--json", "--quiet", "--strict"],
         setup=_root_with_bad_skeleton(CORRUPTIONS["coordinate 1e30"][0]), status=3),
]


@pytest.mark.parametrize("case", SKELETON_CASES, ids=lambda c: c.id)
def test_malformed_skeletons_are_recorded_and_the_batch_goes_on(case: Case, env: Env, adversarial_data: Env) -> None:
    check_case(case, env, [adversarial_data.case])


# ----------------------------------------------------------------------------- damaged depth frames


def _png_header(height: int, width: int) -> bytes:
    """A PNG signature, an IHDR chunk (16-bit greyscale) claiming ``height`` x ``width``, and IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def _root_with_depth_frame(content: bytes) -> Callable[[Env], None]:
    """A root of one sample (skeleton and masked depth) whose second depth frame holds ``content``."""

    def setup(env: Env) -> None:
        skeleton = _first_skeleton(env)
        name = skeleton.name[: -len(".skeleton")]
        (env.case / "root" / "nturgb+d_skeletons").mkdir(parents=True)
        shutil.copy(skeleton, env.case / "root" / "nturgb+d_skeletons")
        depth = env.case / "root" / "nturgb+d_depth_masked" / name
        shutil.copytree(env.raw / "nturgb+d_depth_masked" / name, depth)
        (depth / "MDepth-00000002.png").write_bytes(content)

    return setup


def _depth_frame_refused(*needles: str) -> Callable[[str, Env], None]:
    def check(stdout: str, env: Env) -> None:
        report = json.loads(stdout)
        assert report["num_failed"] == 1 and report["num_done"] == 0, report
        error = report["failures"][0][2]
        assert error.startswith("DepthFormatError") and "MDepth-00000002.png" in error, error
        assert all(needle in error for needle in needles), error

    return check


DEPTH_CASES = [
    Case(f"prepare-depth-{name}", lambda e: ["prepare", "root", "--out", "out", "--modalities", "depth,points",
                                             "--workers", "0", "--json", "--quiet"],
         setup=_root_with_depth_frame(content), status=0, stdout_check=_depth_frame_refused(*needles), outputs=("out",))
    for name, content, needles in (
        ("png-header-16000x16000", _png_header(16000, 16000), ("16000x16000", "before decoding")),
        ("png-header-1x1", _png_header(1, 1), ("424x512",)),
        ("not-a-png", b"\xff\xd8\xff\xe0" + bytes(64), ("not a PNG",)),
    )
]


@pytest.mark.parametrize("case", DEPTH_CASES, ids=lambda c: c.id)
def test_damaged_depth_frames_are_refused_before_decoding(case: Case, env: Env, adversarial_data: Env) -> None:
    check_case(case, env, [adversarial_data.case])


# ----------------------------------------------------------------------------- hostile checkpoints


class _CodeOnLoad:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path("/tmp/actionfusion_pwned").touch, ())


def _weights(kind: str) -> Callable[[Env, Path], Path]:
    def make(env: Env, run: Path) -> Path:
        path = env.case / ("w.pth" if kind in ("pickle-code", "pth-random", "pth-list") else "w.safetensors")
        good = (run / "best.safetensors").read_bytes()
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "random":
            path.write_bytes(np.random.default_rng(0).bytes(4096))
        elif kind == "truncated":
            path.write_bytes(good[: len(good) // 2])
        elif kind == "header-only":
            path.write_bytes(good[:8])
        elif kind == "other-model":
            save_file({"weight": torch.zeros(3, 3)}, str(path))
        elif kind == "wrong-shapes":
            from safetensors.torch import load_file

            state = load_file(str(run / "best.safetensors"))
            key = sorted(state)[0]
            state[key] = torch.zeros(tuple(state[key].shape) + (2,))
            save_file(state, str(path))
        elif kind == "pickle-code":
            torch.save({"state_dict": {"a": torch.ones(1)}, "payload": _CodeOnLoad()}, path)
        elif kind == "pth-random":
            path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(1000))
        elif kind == "pth-list":
            torch.save([torch.ones(1)], path)
        return path

    return make


CHECKPOINT_KINDS = ("empty", "random", "truncated", "header-only", "other-model", "wrong-shapes", "pickle-code",
                    "pth-random", "pth-list")


def _checkpoint_cases() -> List[Case]:
    cases = []
    for kind in CHECKPOINT_KINDS:
        make = _weights(kind)
        cases.append(Case(f"evaluate-checkpoint-{kind}", lambda e, make=make: [
            "evaluate", str(e.run / "config.yaml"), "--checkpoint", str(make(e, e.run)), "--work-dir", "out"]))
        cases.append(Case(f"extract-features-checkpoint-{kind}", lambda e, make=make: [
            "extract-features", str(make(e, e.run)), str(_first_skeleton(e)), "--config", str(e.run / "config.yaml"),
            "--out", "out", "--quiet"]))
        cases.append(Case(f"train-pretrained-{kind}", lambda e, make=make: [
            "train", str(e.run / "config.yaml"), "--pretrained", str(make(e, e.run)), "--work-dir", "out"]))
        cases.append(Case(f"convert-checkpoint-{kind}", lambda e, make=make: [
            "convert-checkpoint", "--from", "stgcn", str(make(e, e.run)), "out/w.safetensors"]))
    return cases


def _same_names(env: Env) -> None:
    """Two different .skeleton files of one name in two folders."""
    files = sorted((env.raw / "nturgb+d_skeletons").glob("*.skeleton"))[:2]
    for folder, source in zip(("d1", "d2"), files):
        (env.case / folder).mkdir()
        shutil.copy(source, env.case / folder / "x.skeleton")


def _three_outputs(stdout: str, env: Env) -> None:
    index = json.loads((env.case / "out" / "index.json").read_text())
    assert sorted(index["samples"]) == ["x", "x__2", "x__3"] and not index["failures"], index
    assert [index["samples"][n]["input"] for n in ("x", "x__2", "x__3")] == ["d1/x.skeleton", "d2/x.skeleton",
                                                                           "d1/x.skeleton"]


NAME_CASES = [
    Case("extract-features-same-name-and-same-file", lambda e: [
        "extract-features", str(e.run), "d1/x.skeleton", "d2/x.skeleton", "d1/x.skeleton", "--out", "out", "--quiet"],
        setup=_same_names, status=0, stdout_check=_three_outputs),
]


@pytest.mark.parametrize("case", NAME_CASES, ids=lambda c: c.id)
def test_colliding_input_names_get_suffixes(case: Case, env: Env, adversarial_data: Env, trained_run: Path) -> None:
    env.run = trained_run  # type: ignore[attr-defined]
    check_case(case, env, [adversarial_data.case])


@pytest.mark.parametrize("case", _checkpoint_cases(), ids=lambda c: c.id)
def test_hostile_checkpoints(case: Case, env: Env, adversarial_data: Env, trained_run: Path) -> None:
    env.run = trained_run  # type: ignore[attr-defined]
    marker = Path("/tmp/actionfusion_pwned")
    marker.unlink(missing_ok=True)
    check_case(case, env, [adversarial_data.case])
    assert not marker.exists(), "a checkpoint's pickled code ran"


# ----------------------------------------------------------------------------- hostile pyskl pickles


def _sample(frame_dir: Any, **changes: Any) -> Dict[str, Any]:
    record = {"frame_dir": frame_dir, "label": 3, "total_frames": 4,
              "keypoint": np.zeros((1, 4, 25, 3), np.float32)}
    record.update(changes)
    return record


PICKLES: Dict[str, Any] = {
    "frame-dir-parent": [_sample("../../../escaped")],
    "frame-dir-absolute": [_sample("/tmp/actionfusion_escaped")],
    "frame-dir-separator": [_sample("a/b")],
    "frame-dir-dotdot": [_sample("..")],
    "frame-dir-dot": [_sample(".")],
    "frame-dir-hidden": [_sample(".staging")],
    "frame-dir-nul": [_sample("S001\x00x")],
    "frame-dir-long": [_sample("S" * 300)],
    "frame-dir-int": [_sample(17)],
    "frame-dir-empty": [_sample("")],
    "frame-dir-backslash": [_sample("..\\..\\x")],
    "duplicate-frame-dir": [_sample("S001C001P001R001A001"), _sample("S001C001P001R001A001")],
    "keypoint-nan": [_sample("S001C001P001R001A001", keypoint=np.full((1, 4, 25, 3), np.nan, np.float32))],
    "keypoint-3d-array": [_sample("S001C001P001R001A001", keypoint=np.zeros((4, 25, 3), np.float32))],
    "keypoint-c4": [_sample("S001C001P001R001A001", keypoint=np.zeros((1, 4, 25, 4), np.float32))],
    "keypoint-list": [_sample("S001C001P001R001A001", keypoint=[[1.0]])],
    "frames-mismatch": [_sample("S001C001P001R001A001", total_frames=9)],
    "label-negative": [_sample("S001C001P001R001A001", label=-1)],
    "label-text": [_sample("S001C001P001R001A001", label="walk")],
    "missing-keypoint": [{"frame_dir": "S001C001P001R001A001", "label": 1, "total_frames": 4}],
    "record-not-dict": ["S001C001P001R001A001"],
    "annotations-not-list": "nope",
}


def _pickle_case(name: str, annotations: Any) -> Case:
    def setup(env: Env) -> None:
        content = {"split": {"xsub_train": ["S001C001P001R001A001"]}, "annotations": annotations}
        env.write("a.pkl", pickle.dumps(content))

    return Case(f"import-pyskl-{name}", lambda e: ["import-pyskl", "a.pkl", "--out", "sub/out", "--trust-pickle"],
                setup=setup, outputs=("sub/out",))


PICKLE_CASES = [_pickle_case(name, annotations) for name, annotations in PICKLES.items()] + [
    Case("import-pyskl-not-a-pickle", lambda e: ["import-pyskl", "a.pkl", "--out", "out", "--trust-pickle"],
         setup=lambda e: e.write("a.pkl", b"garbage, not a pickle")),
    Case("import-pyskl-truncated", lambda e: ["import-pyskl", "a.pkl", "--out", "out", "--trust-pickle"],
         setup=lambda e: e.write("a.pkl", pickle.dumps({"annotations": [_sample("S001C001P001R001A001")]})[:50])),
    Case("import-pyskl-top-level-list", lambda e: ["import-pyskl", "a.pkl", "--out", "out", "--trust-pickle"],
         setup=lambda e: e.write("a.pkl", pickle.dumps([1, 2]))),
    Case("import-pyskl-without-trust", lambda e: ["import-pyskl", "a.pkl", "--out", "out"],
         setup=lambda e: e.write("a.pkl", pickle.dumps({"annotations": []})), status=2, match="--trust-pickle"),
]


@pytest.mark.parametrize("case", PICKLE_CASES, ids=lambda c: c.id)
def test_hostile_pyskl_pickles(case: Case, env: Env, adversarial_data: Env) -> None:
    escaped = Path("/tmp/actionfusion_escaped")
    shutil.rmtree(escaped, ignore_errors=True)
    check_case(case, env, [adversarial_data.case])
    assert not escaped.exists()


# ----------------------------------------------------------------------------- damaged stores


def _damaged_store(damage: Callable[[Path], None]) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        shutil.copytree(env.store, env.case / "store")
        damage(env.case / "store")

    return setup


def _first_sample(store: Path) -> Path:
    return sorted(p for p in (store / "samples").iterdir() if not p.name.startswith("."))[0]


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(store: Path) -> None:
        manifest = json.loads((store / "manifest.json").read_text())
        change(manifest)
        (store / "manifest.json").write_text(json.dumps(manifest))

    return damage


def _flip_bit(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def _flip_skeleton_byte(store: Path) -> None:
    """One bit of a coordinate of the first sample's skeleton.npy: still finite, same shape."""
    path = _first_sample(store) / "skeleton.npy"
    _flip_bit(path, path.stat().st_size - 7)


def _add_rgb_pack_with_flipped_bit(store: Path) -> None:
    """Give the first sample an rgb pack (listed in meta.json without a checksum record, as an old store
    would) whose frame 1 has one flipped bit in its JPEG data: only the frame's CRC can tell."""
    from actionfusion.datasets.store.frame_pack import FramePack, write_frame_pack

    sample = _first_sample(store)
    yy, xx = np.mgrid[0:32, 0:32]
    frames = [np.stack([xx * 6 + t, yy * 5, (xx + yy) * 3], axis=-1).astype(np.uint8) for t in range(3)]
    write_frame_pack(sample / "rgb.pack", frames, "jpeg")
    with FramePack(sample / "rgb.pack") as pack:
        middle = (int(pack.offsets[1]) + int(pack.offsets[2])) // 2
    _flip_bit(sample / "rgb.pack", middle)
    meta = json.loads((sample / "meta.json").read_text())
    meta["modalities"]["rgb"] = {"shape": [3, 32, 32, 3], "dtype": "uint8", "num_frames": 3, "codec": "jpeg"}
    (sample / "meta.json").write_text(json.dumps(meta))


def _edit_first_meta(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(store: Path) -> None:
        meta = json.loads((_first_sample(store) / "meta.json").read_text())
        change(meta)
        (_first_sample(store) / "meta.json").write_text(json.dumps(meta))

    return damage


STORE_DAMAGE: Dict[str, Callable[[Path], None]] = {
    "manifest-missing": lambda s: (s / "manifest.json").unlink(),
    "manifest-garbage": lambda s: (s / "manifest.json").write_bytes(b"\x00\xff not json"),
    "manifest-list": lambda s: (s / "manifest.json").write_text("[1, 2]"),
    "manifest-hostile-name": _edit_manifest(lambda m: m["samples"].update({"../../../escaped": {"status": "ok"}})),
    "manifest-absolute-name": _edit_manifest(lambda m: m["samples"].update({"/tmp/x": {"status": "ok"}})),
    "sample-folder-deleted": lambda s: shutil.rmtree(_first_sample(s)),
    "meta-garbage": lambda s: (_first_sample(s) / "meta.json").write_text("{not json"),
    "skeleton-truncated": lambda s: (_first_sample(s) / "skeleton.npy").write_bytes(
        (_first_sample(s) / "skeleton.npy").read_bytes()[:100]),
    "skeleton-deleted": lambda s: (_first_sample(s) / "skeleton.npy").unlink(),
    "skeleton-object-array": lambda s: np.save(_first_sample(s) / "skeleton.npy", np.array([{}], dtype=object),
                                               allow_pickle=True),
    "skeleton-byte-flipped": _flip_skeleton_byte,
    "rgb-frame-bit-flipped": _add_rgb_pack_with_flipped_bit,
    "meta-files-hostile-name": _edit_first_meta(lambda m: m["files"].update(
        {"../../manifest.json": {"size": 1, "blake2b_128": "00"}})),
    "meta-files-not-an-object": _edit_first_meta(lambda m: m.update({"files": [1, 2]})),
}

STORE_CASES = [
    Case(f"{command}-{name}", (lambda command: lambda e: {
        "store-info": ["store-info", "store"],
        "export-pyskl": ["export-pyskl", "store", "--out", "out/a.pkl"],
    }[command])(command), setup=_damaged_store(damage), status=(0, 1), outputs=("out",))
    for name, damage in STORE_DAMAGE.items() for command in ("store-info", "export-pyskl")
]


def _first_test_sample(store: Path) -> Path:
    return sorted((store / "samples").glob("*P003*"))[0]  # P003: an NTU60 xsub test performer


def _one_missing(stdout: str, env: Env) -> None:
    metrics = json.loads(stdout)
    assert metrics["missing_samples"] == 1 and metrics["num_samples"] == 14, metrics


def _partial_test_sample(store: Path) -> None:
    """The first test sample loses its skeleton, as a sample prepared without one (status partial)."""
    sample = _first_test_sample(store)
    meta = json.loads((sample / "meta.json").read_text())
    meta["modalities"].pop("skeleton")
    meta["status"] = "partial"
    (sample / "meta.json").write_text(json.dumps(meta))
    (sample / "skeleton.npy").unlink()


def _one_skipped(stdout: str, env: Env) -> None:
    metrics = json.loads(stdout)
    assert metrics["skipped_samples"] == 1 and metrics["num_samples"] == 14, metrics


STORE_CASES += [
    Case("evaluate-partial-sample", lambda e: ["evaluate", str(e.run / "config.yaml"), "--checkpoint", str(e.run),
                                               "--set", "data.store=store", "--work-dir", "out"],
         setup=_damaged_store(_partial_test_sample), status=0, stdout_check=_one_skipped),
    Case("evaluate-partial-sample-strict", lambda e: ["evaluate", str(e.run / "config.yaml"), "--checkpoint",
                                                      str(e.run), "--set", "data.store=store", "--strict"],
         setup=_damaged_store(_partial_test_sample), status=1, match="incomplete or damaged"),
    Case("evaluate-truncated-test-sample", lambda e: ["evaluate", str(e.run / "config.yaml"), "--checkpoint",
                                                      str(e.run), "--set", "data.store=store", "--work-dir", "out"],
         setup=_damaged_store(lambda s: (_first_test_sample(s) / "skeleton.npy").write_bytes(
             (_first_test_sample(s) / "skeleton.npy").read_bytes()[:-24])), status=0, stdout_check=_one_skipped),
    Case("store-info-verify-nan", lambda e: ["store-info", "store", "--verify", "--quiet"], status=1,
         setup=_damaged_store(lambda s: np.save(_first_sample(s) / "skeleton.npy", np.full(
             np.load(_first_sample(s) / "skeleton.npy").shape, np.nan, np.float32))), match="NaN"),
    Case("store-info-verify-missing", lambda e: ["store-info", "store", "--verify", "--quiet"], status=1,
         setup=_damaged_store(lambda s: shutil.rmtree(_first_sample(s))), match="missing"),
    Case("store-info-verify-shape", lambda e: ["store-info", "store", "--verify", "--quiet"], status=1,
         setup=_damaged_store(lambda s: np.save(_first_sample(s) / "skeleton.npy", np.zeros((2, 3, 25, 3),
                                                                                             np.float32))),
         match="shape"),
    *[Case(f"store-info-verify-{name}", lambda e: ["store-info", "store", "--verify", "--quiet"], status=1,
           setup=_damaged_store(STORE_DAMAGE[name]), match=match)
      for name, match in (("skeleton-byte-flipped", "skeleton.npy: checksum mismatch"),
                          ("rgb-frame-bit-flipped", "frame 1"), ("meta-files-hostile-name", "unknown file"),
                          ("meta-files-not-an-object", "'files' is not an object"))],
    Case("evaluate-test-sample-missing", lambda e: ["evaluate", str(e.run / "config.yaml"), "--checkpoint", str(e.run),
                                                    "--set", "data.store=store", "--work-dir", "out"],
         setup=_damaged_store(lambda s: shutil.rmtree(_first_test_sample(s))), status=0, stdout_check=_one_missing),
    Case("evaluate-test-sample-nan", lambda e: ["evaluate", str(e.run / "config.yaml"), "--checkpoint", str(e.run),
                                                "--set", "data.store=store", "--work-dir", "out"],
         setup=_damaged_store(lambda s: np.save(_first_test_sample(s) / "skeleton.npy", np.full(
             np.load(_first_test_sample(s) / "skeleton.npy").shape, np.nan, np.float32))), match="P003"),
]


@pytest.mark.parametrize("case", STORE_CASES, ids=lambda c: c.id)
def test_damaged_stores(case: Case, env: Env, adversarial_data: Env, trained_run: Path) -> None:
    env.run = trained_run  # type: ignore[attr-defined]
    check_case(case, env, [adversarial_data.case])
