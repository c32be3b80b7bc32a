import os
import subprocess
import sys

import numpy as np
import pytest

from actionfusion import io as afio


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a" / "f.json"
    afio.atomic_write_json(target, {"x": 1})
    afio.atomic_write_json(target, {"x": 2})
    assert afio.load_json(target) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_failed_write_leaves_old_content_and_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    afio.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with afio.atomic_write(target, "w") as handle:
            handle.write("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_killed_writer_never_exposes_partial_file(tmp_path):
    target = tmp_path / "big.bin"
    code = (
        "import os, signal\n"
        "from actionfusion.io import atomic_write\n"
        f"with atomic_write({str(target)!r}) as h:\n"
        "    h.write(b'x' * 1000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert not target.exists()
    assert afio.remove_stale_staging(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_npy_roundtrip_refuses_objects(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    afio.atomic_save_npy(tmp_path / "a.npy", arr)
    assert np.array_equal(afio.load_npy(tmp_path / "a.npy", mmap=True), arr)
    with pytest.raises(TypeError):
        afio.atomic_save_npy(tmp_path / "b.npy", np.array([{"a": 1}], dtype=object))


def test_publish_dir_is_all_or_nothing(tmp_path):
    final = tmp_path / "sample"
    staging = afio.make_staging_dir(final)
    (staging / "x.txt").write_text("1")
    assert not final.exists()
    afio.atomic_publish_dir(staging, final)
    assert (final / "x.txt").read_text() == "1"
    assert not staging.exists()
    # A finished sample is never overwritten in place: publishing onto it fails.
    other = afio.make_staging_dir(final)
    (other / "y.txt").write_text("2")
    with pytest.raises(OSError):
        afio.atomic_publish_dir(other, final)
    assert (final / "x.txt").read_text() == "1"


def test_yaml_is_safe(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: !!python/object/apply:os.system ['echo hi']\n")
    import yaml

    with pytest.raises(yaml.YAMLError):
        afio.load_yaml(path)


def test_published_files_get_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        afio.atomic_write_text(tmp_path / "f.txt", "x")
        staging = afio.make_staging_dir(tmp_path / "d")
        afio.atomic_publish_dir(staging, tmp_path / "d")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
