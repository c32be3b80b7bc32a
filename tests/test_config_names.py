"""Config names: ``load_config("synthetic/ctrgcn")`` and ``actionfusion configs`` in a checkout, from
another directory, and from a built wheel (which must carry every config)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from actionfusion.errors import UsageError
from actionfusion.pipeline import config_names
from actionfusion.pipeline.cli import main
from actionfusion.pipeline.config import ConfigError, load_config, load_config_dict
from actionfusion.pipeline.config_names import UnknownConfigError, list_config_names, resolve_config_path
from actionfusion.pipeline.demo import DEMO_TRAIN_CONFIG
from actionfusion.pipeline.pose3d import load_pose3d_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHIPPED = sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.yaml"))


def test_a_name_with_or_without_yaml_is_the_checkout_file() -> None:
    by_path = load_config(CONFIGS / "synthetic" / "ctrgcn.yaml").to_dict()
    for name in ("synthetic/ctrgcn", "synthetic/ctrgcn.yaml", "configs/synthetic/ctrgcn"):
        assert resolve_config_path(name) == CONFIGS / "synthetic" / "ctrgcn.yaml"
        assert load_config(name).to_dict() == by_path


def test_bases_resolve_through_a_name() -> None:
    """synthetic/ctrgcn inherits ntu60_xsub/ctrgcn (architecture) and base/synthetic (32-frame clips)."""
    raw = load_config_dict("synthetic/ctrgcn")
    parent = load_config_dict("ntu60_xsub/ctrgcn")
    synthetic = load_config_dict("base/synthetic")
    assert "_base_" not in raw
    assert raw["model"]["name"] == parent["model"]["name"] == "ctrgcn"
    assert raw["data"]["clip_len"] == synthetic["data"]["clip_len"] == 32 != parent["data"]["clip_len"]


def test_a_path_still_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "ctrgcn.yaml").write_text("seed: 1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("synthetic/ctrgcn.yaml") == Path("synthetic/ctrgcn.yaml")
    assert resolve_config_path("synthetic/ctrgcn") == CONFIGS / "synthetic" / "ctrgcn.yaml"  # no such file here


def test_names_load_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config("synthetic/ctrgcn").experiment == "synthetic_ctrgcn"
    assert load_config(DEMO_TRAIN_CONFIG).model.name  # the demo's config, by name
    assert load_pose3d_config("pose3d/synthetic_unipose") == load_pose3d_config(
        CONFIGS / "pose3d" / "synthetic_unipose.yaml")


def test_an_unknown_name_is_one_line_with_the_closest_names() -> None:
    with pytest.raises(UnknownConfigError) as info:
        load_config("synthetic/ctrgnc")
    error = info.value
    assert isinstance(error, ConfigError) and isinstance(error, UsageError)
    text = str(error)
    assert "\n" not in text and "did you mean synthetic/ctrgcn," in text
    with pytest.raises(UnknownConfigError, match="did you mean ntu120_xset/ctrgcn"):
        load_config("ctrgcn.yaml")  # the last part alone is close to every benchmark's ctrgcn
    with pytest.raises(UnknownConfigError, match="not found") as info:
        load_config("../escape/zzzzzz")
    assert "did you mean" not in str(info.value)


def test_cli_train_with_an_unknown_name_exits_2_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "synthetic/ctrgnc", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean synthetic/ctrgcn" in err


def test_cli_configs_lists_the_names_of_a_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs", "synthetic/*", "--names-only"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [n for n in SHIPPED if n.startswith("synthetic/")] and "synthetic/mmixer" in out
    assert main(["configs", "mmixer"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ntu60_xsub/mmixer", "synthetic/mmixer"]
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # each with its first comment line
    assert main(["configs", "no_such_config"]) == 2
    assert list_config_names() == SHIPPED


def test_packaged_configs_are_used_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no checkout, names resolve in the package's configs folder, bases included."""
    packaged = tmp_path / "actionfusion" / "configs"
    shutil.copytree(CONFIGS, packaged)
    monkeypatch.setattr(config_names, "checkout_configs_root", lambda: None)
    monkeypatch.setattr(config_names, "packaged_configs_root", lambda: packaged)
    assert resolve_config_path("synthetic/ctrgcn") == packaged / "synthetic" / "ctrgcn.yaml"
    assert load_config("synthetic/ctrgcn").to_dict() == load_config(CONFIGS / "synthetic" / "ctrgcn.yaml").to_dict()
    monkeypatch.setattr(config_names, "packaged_configs_root", lambda: None)
    with pytest.raises(UnknownConfigError, match="ships no configs folder"):
        load_config("synthetic/ctrgcn")


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` from a copy of the sources (so the checkout gets no build/)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    source.mkdir()
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("actionfusion", "configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=ignore)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(tmp_path / "wheel")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "wheel").glob("actionfusion-*.whl")
    return wheel


def test_the_built_wheel_carries_every_config_and_resolves_names(built_wheel: Path, tmp_path: Path) -> None:
    """The unpacked wheel alone on the path, run from an unrelated directory: names and ``_base_``
    resolve inside it."""
    wheel = built_wheel
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {f"actionfusion/configs/{name}.yaml" for name in SHIPPED} <= members
    # the license setup.cfg names travels with the wheel, word for word
    (license_member,) = [m for m in members if m.endswith(".dist-info/licenses/LICENSE") or m.endswith(".dist-info/LICENSE")]
    assert (tmp_path / "site" / license_member).read_text() == (REPO / "LICENSE").read_text()
    assert "license = Apache-2.0" in (REPO / "setup.cfg").read_text()
    assert (REPO / "LICENSE").read_text().startswith("Apache License\n                           Version 2.0, January 2004")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import json, actionfusion\n"
        "from actionfusion.pipeline.config import load_config\n"
        "from actionfusion.pipeline.config_names import resolve_config_path, list_config_names\n"
        "print(json.dumps({'package': actionfusion.__file__, 'path': str(resolve_config_path('synthetic/ctrgcn')),"
        " 'config': load_config('synthetic/ctrgcn').to_dict(), 'names': list_config_names('synthetic/*')}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    site = str(tmp_path / "site")
    assert found["package"].startswith(site) and found["path"].startswith(site)
    assert found["config"] == load_config(CONFIGS / "synthetic" / "ctrgcn.yaml").to_dict()
    assert found["names"] == [n for n in SHIPPED if n.startswith("synthetic/")]


def test_the_wheel_installed_in_a_fresh_venv_runs_the_tiny_demo_elsewhere(built_wheel: Path, tmp_path: Path) -> None:
    """``pip install`` of the built wheel into a new virtual environment, then its ``actionfusion``
    console script runs the tiny demo from an unrelated directory. The new environment reaches the
    dependencies (torch, ...) through a path line to this environment's site-packages, so nothing is
    downloaded; this environment's editable install of the checkout is not on that path (the path
    line does not run its .pth hooks), which the test checks."""
    import site
    import venv

    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    fresh_site = Path(subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "-q", str(built_wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    where = subprocess.run([str(python), "-c", "import actionfusion; print(actionfusion.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(fresh_site)), where  # the wheel's copy, not the checkout
    quick = ("--set", "schedule.epochs=1", "--set", "schedule.warmup_epochs=0", "--set", "data.clip_len=16")
    demo = subprocess.run([str(fresh / "bin" / "actionfusion"), "demo", "--scale", "tiny", "--out", "out",
                           "--workers", "1", *quick], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=600)
    assert demo.returncode == 0, demo.stderr[-2000:]
    record = json.loads(demo.stdout.strip().splitlines()[-1])
    assert record["samples"] == 30 and record["failed"] == 0 and 0.0 <= record["test_top1"] <= 1.0
    assert (elsewhere / "out" / "work_dirs" / "synthetic_mmixer" / "metrics.json").is_file()
