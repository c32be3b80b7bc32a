"""The command line as a user runs it: ``python -m actionfusion ...``."""

import json
import subprocess
import sys

from actionfusion.pipeline.cli import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionfusion", *args], capture_output=True, text=True, timeout=240)


def test_help_lists_subcommands():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("synth", "scan", "prepare", "store-info", "import-pyskl", "export-pyskl", "demo", "run",
                    "extract-features"):
        assert command in result.stdout


def test_demo_tiny_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    quick = ("--set", "schedule.epochs=1", "--set", "schedule.warmup_epochs=0", "--set", "data.clip_len=16")
    first = _run("demo", "--scale", "tiny", "--out", str(out), *quick)
    assert first.returncode == 0, first.stderr[-2000:]
    record = json.loads(first.stdout.strip().splitlines()[-1])
    assert record["samples"] == 30 and record["failed"] == 0
    assert 0.0 <= record["test_top1"] <= 1.0
    assert "samples per class, ntu60_xsub" in first.stdout
    assert "held-out accuracy" in first.stdout
    work = out / "work_dirs" / "synthetic_mmixer"
    assert (work / "confusion.png").is_file()
    assert set(record["test_top1_by_modality"]) == {"all", "skeleton", "hands", "depth"}
    assert "only hands" in first.stdout and "fused (skeleton + rgb_hands + depth)" in first.stdout
    index = json.loads((out / "features" / "index.json").read_text())
    assert record["features"] == len(index["samples"]) > 0 and not index["failures"]
    # the hand glimpses of a raw video come from its skeleton file's colorX/Y
    assert all(entry["modalities_used"] == ["skeleton", "rgb_hands", "depth"] for entry in index["samples"].values())
    # Running again resumes: nothing is generated or prepared twice.
    second = _run("demo", "--scale", "tiny", "--out", str(out), *quick)
    assert second.returncode == 0
    assert "(0 generated now, 30 already there)" in second.stdout
    assert "0 prepared now" in second.stdout
    assert "not training again" in second.stderr
    assert f"0 written, {record['features']} already there" in second.stdout

    scan = json.loads(_run("scan", str(out / "synthetic_ntu")).stdout)
    assert scan["samples"] == 30 and scan["combinations"] == {"skeleton+rgb+depth_masked": 30}

    info = json.loads(_run("store-info", str(out / "store")).stdout)
    assert info["num_samples"] == 30
    assert set(info["shapes"]) == {"skeleton", "pose2d_sensor", "rgb", "depth", "points"}


def test_errors_are_reported_without_traceback(tmp_path, capsys):
    assert main(["store-info", str(tmp_path)]) == 1
    assert "not a sample store" in capsys.readouterr().err


def test_train_print_config_merges_set_cfg_options_seed_and_amp(capsys):
    """--print-config shows the resolved config; --cfg-options (several at once) is --set's alias."""
    import yaml

    from actionfusion.pipeline.cli import main

    status = main(["train", "configs/synthetic/stgcn.yaml", "--set", "data.clip_len=24", "--cfg-options",
                   "optim.lr=0.2", "schedule.epochs=3", "--seed", "7", "--amp", "--print-config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert status == 0
    assert (config["seed"], config["optim"]["lr"], config["schedule"]["epochs"]) == (7, 0.2, 3)
    assert config["data"]["clip_len"] == 24 and config["train"]["amp"] is True
    assert main(["train", "configs/synthetic/stgcn.yaml", "--cfg-options", "optim.lr=-1", "--print-config"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_error_boundary_statuses_and_lines():
    """Failures exit 1 on one line, usage errors 2, a bug prints its traceback and says it is one."""
    import io

    from actionfusion.errors import StoreError, UsageError
    from actionfusion.pipeline.cli_errors import run_with_error_boundary

    def run(error: BaseException, debug: bool = False):
        def handler() -> int:
            raise error
        stream = io.StringIO()
        return run_with_error_boundary("cmd", handler, debug=debug, stream=stream), stream.getvalue()

    status, text = run(StoreError("store: damaged\nsecond line"))
    assert status == 1 and text == "actionfusion cmd: error: store: damaged; second line\n"
    status, text = run(UsageError("--x must be positive"))
    assert status == 2 and text.count("\n") == 1
    status, text = run(FileNotFoundError(2, "No such file or directory", "a/b.yaml"))
    assert status == 1 and text == "actionfusion cmd: error: a/b.yaml: No such file or directory: check the path\n"
    status, text = run(StoreError("x"), debug=True)
    assert status == 1 and "Traceback" in text
    status, text = run(ZeroDivisionError("division by zero"))
    assert status == 1 and "Traceback" in text and "This is a bug in actionfusion" in text.splitlines()[-1]


def test_synth_takes_out_as_every_command_does(tmp_path, capsys):
    from actionfusion.pipeline.cli import main

    assert main(["synth", "--out", str(tmp_path / "a"), "--scale", "tiny", "--workers", "1", "--quiet"]) == 0
    assert len(list((tmp_path / "a" / "nturgb+d_skeletons").glob("*.skeleton"))) == 30
    assert main(["synth", str(tmp_path / "b"), "--out", str(tmp_path / "c"), "--scale", "tiny"]) == 2
    assert main(["synth", "--scale", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "actionfusion synth: error: synth: give the output folder: actionfusion synth --out DIR"
    assert "two output folders" in err[-2] and not (tmp_path / "b").exists()
