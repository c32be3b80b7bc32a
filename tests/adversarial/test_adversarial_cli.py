"""Bad inputs for every command: each ends in the typed one-line error (exit 1, or 2 for usage),
or in the correct result, and writes nothing outside its outputs (see harness.py)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import List

import numpy as np
import pytest

from .harness import Case, Env, check_case

pytestmark = pytest.mark.timeout(120)  # a case that starts real work instead of refusing fails, not hangs

REPO = Path(__file__).resolve().parents[2]
STGCN = REPO / "configs" / "synthetic" / "stgcn.yaml"
MAMP_PRE = REPO / "configs" / "synthetic" / "mamp_pretrain.yaml"
MAMP_PROBE = REPO / "configs" / "synthetic" / "mamp_probe.yaml"


def config(env: Env, body: str, base: Path = STGCN, name: str = "bad.yaml") -> str:
    """A config over ``base`` on the session store (one epoch), with ``body`` appended."""
    text = f"_base_: [{base}]\ndata: {{store: {env.store}, num_workers: 0}}\nschedule: {{epochs: 1, warmup_epochs: 0}}\n"
    return str(env.write(name, text + body))


# ----------------------------------------------------------------------------- missing inputs

MISSING = "missing/nothing_here"
CASES: List[Case] = [
    Case("prepare-missing-root", lambda e: ["prepare", MISSING, "--out", "out", "--quiet"]),
    Case("scan-missing-root", lambda e: ["scan", MISSING]),
    Case("store-info-missing", lambda e: ["store-info", MISSING]),
    Case("import-pyskl-missing", lambda e: ["import-pyskl", MISSING + ".pkl", "--out", "out", "--trust-pickle"]),
    Case("export-pyskl-missing-store", lambda e: ["export-pyskl", MISSING, "--out", "out/a.pkl"]),
    Case("train-missing-config", lambda e: ["train", MISSING + ".yaml", "--work-dir", "out"]),
    Case("pretrain-missing-config", lambda e: ["pretrain", MISSING + ".yaml", "--work-dir", "out"]),
    Case("probe-missing-config", lambda e: ["probe", MISSING + ".yaml", "--protocol", "knn", "--work-dir", "out"]),
    Case("run-missing-config", lambda e: ["run", MISSING + ".yaml", "--work-dir", "out"]),
    Case("evaluate-missing-config", lambda e: ["evaluate", MISSING + ".yaml", "--checkpoint", "x", "--work-dir", "out"]),
    Case("evaluate-missing-checkpoint", lambda e: ["evaluate", config(e, ""), "--checkpoint", MISSING, "--work-dir", "out"]),
    Case("fuse-missing-scores", lambda e: ["fuse", MISSING + ".npy", MISSING + "2.npy", "--out", "out"]),
    Case("extract-poses-missing", lambda e: ["extract-poses", MISSING + ".mp4", "--out", "out", "--quiet"], status=(0, 1, 2, 3)),
    Case("visualize-missing-video", lambda e: ["visualize-poses", MISSING + ".mp4", "--out", "out/a.png"]),
    Case("visualize-missing-sample", lambda e: ["visualize-poses", "S001C001P001R001A001", "--store", str(e.store),
                                                 "--out", "out/a.png"]),
    Case("extract-features-missing", lambda e: ["extract-features", MISSING + ".skeleton", "--out", "out"], status=(0, 1, 2, 3)),
    Case("convert-checkpoint-missing", lambda e: ["convert-checkpoint", MISSING + ".pth", "--model", "stgcn",
                                                   "--out", "out/a.safetensors"]),
    Case("pose3d-train-missing", lambda e: ["pose3d", "train", MISSING + ".yaml", "--work-dir", "out"]),
    Case("pose3d-evaluate-missing", lambda e: ["pose3d", "evaluate", MISSING + ".yaml", "--checkpoint", MISSING]),
    Case("train-pretrained-missing", lambda e: ["train", config(e, ""), "--pretrained", MISSING + ".safetensors",
                                                 "--work-dir", "out"]),
    Case("probe-pretrained-missing", lambda e: ["probe", config(e, "", MAMP_PROBE), "--pretrained", MISSING,
                                                 "--protocol", "knn", "--work-dir", "out"]),
    Case("train-store-missing", lambda e: ["train", config(e, f"data: {{store: {MISSING}}}\n"), "--work-dir", "out"]),
]

# ----------------------------------------------------------------------------- outputs in the way


def _file(name: str):
    return lambda e: e.write(name, "in the way")


def _fake_checkpoint(env: Env) -> None:
    for name in ("model.safetensors", "trainer_state.json"):
        env.write(f"out/checkpoints/epoch_0001/{name}", b"{}")


OUTPUT_CASES: List[Case] = [
    Case("synth-out-is-file", lambda e: ["synth", "out", "--scale", "tiny", "--quiet"], setup=_file("out")),
    Case("prepare-out-is-file", lambda e: ["prepare", str(e.raw), "--out", "out", "--quiet"], setup=_file("out")),
    Case("import-pyskl-out-is-file", lambda e: ["import-pyskl", "a.pkl", "--out", "out", "--trust-pickle"],
         setup=lambda e: (_file("out")(e), e.write("a.pkl", pickle.dumps({"annotations": [], "split": {}})))),
    Case("export-pyskl-out-is-dir", lambda e: ["export-pyskl", str(e.store), "--out", "out"],
         setup=lambda e: (e.case / "out").mkdir()),
    Case("train-workdir-is-file", lambda e: ["train", config(e, ""), "--work-dir", "out"], setup=_file("out")),
    Case("pretrain-workdir-is-file", lambda e: ["pretrain", config(e, "", MAMP_PRE), "--work-dir", "out"],
         setup=_file("out")),
    Case("probe-workdir-is-file", lambda e: ["probe", config(e, "", MAMP_PROBE), "--protocol", "knn", "--work-dir", "out"],
         setup=_file("out")),
    Case("fuse-out-is-file", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: (_file("out")(e), np.save(e.case / "a.npy", np.eye(3)), np.save(e.case / "b.npy", np.eye(3)))),
    Case("extract-poses-out-is-file", lambda e: ["extract-poses", str(e.raw), "--out", "out", "--quiet"],
         setup=_file("out")),
    Case("prepare-out-unwritable", lambda e: ["prepare", str(e.raw), "--out", "/proc/actionfusion_out", "--quiet"]),
    Case("synth-out-unwritable", lambda e: ["synth", "/proc/actionfusion_out", "--scale", "tiny", "--quiet"]),
    Case("train-workdir-unwritable", lambda e: ["train", config(e, ""), "--work-dir", "/proc/actionfusion_out"]),
    Case("export-pyskl-out-unwritable", lambda e: ["export-pyskl", str(e.store), "--out", "/proc/actionfusion.pkl"]),
    Case("pretrain-over-finished-run", lambda e: ["pretrain", config(e, "", MAMP_PRE), "--work-dir", "out"],
         setup=lambda e: _fake_checkpoint(e), outputs=(), status=2, match="already holds checkpoints"),
    Case("train-over-finished-run", lambda e: ["train", config(e, ""), "--work-dir", "out"],
         setup=lambda e: _fake_checkpoint(e), outputs=(), status=2, match="already holds checkpoints"),
]


@pytest.mark.parametrize("case", CASES + OUTPUT_CASES, ids=lambda c: c.id)
def test_bad_paths(case: Case, env: Env, adversarial_data: Env) -> None:
    check_case(case, env, [adversarial_data.case])


# ----------------------------------------------------------------------------- bad configs

BAD_CONFIG_BODIES = {
    "unknown-top-key": "colour: blue\n",
    "unknown-nested-key": "optim: {learning_rate: 0.1}\n",
    "wrong-type": "schedule: {epochs: ten}\n",
    "negative-epochs": "schedule: {epochs: -3}\n",
    "zero-batch": "data: {batch_size: 0}\n",
    "huge-batch": "data: {batch_size: 1000000000}\n",
    "negative-lr": "optim: {lr: -0.1}\n",
    "nan-lr": "optim: {lr: .nan}\n",
    "huge-clip-len": "data: {clip_len: 1000000000}\n",
    "zero-clip-len": "data: {clip_len: 0}\n",
    "negative-workers": "data: {num_workers: -1}\n",
    "unknown-model": "model: {name: resnet_nonexistent}\n",
    "unknown-model-kwarg": "model: {kwargs: {no_such_option: 3}}\n",
    "unknown-transform": "data: {train_transforms: [{name: teleport}]}\n",
    "transform-bad-kwarg": "data: {train_transforms: [{name: center, radius: 3}]}\n",
    "unknown-objective": "objective: {name: telepathy}\n",
    "unknown-optimizer": "optim: {name: adamx}\n",
    "unknown-schedule": "schedule: {name: wobbly}\n",
    "unknown-benchmark": "data: {benchmark: ntu61_xsub}\n",
    "unknown-modality": "data: {modalities: [smell]}\n",
    "python-object-tag": "seed: !!python/object/apply:os.system ['echo pwned']\n",
    "yaml-syntax": "data: {batch_size: [1, 2\n",
    "list-not-mapping": "- 1\n- 2\n",
    "num-classes-zero-for-train": "model: {num_classes: 0}\n",
    "negative-num-classes": "model: {num_classes: -5}\n",
    "bad-select-by": "train: {select_by: val/accuracy_of_dreams}\n",
    "base-missing": "_base_: [does_not_exist.yaml]\n",
}


def _config_case(command: str, body_id: str, body: str) -> Case:
    base = {"train": STGCN, "pretrain": MAMP_PRE, "probe": MAMP_PROBE, "evaluate": STGCN}[command]
    extra = {"train": ["--work-dir", "out"], "pretrain": ["--work-dir", "out"],
             "probe": ["--protocol", "linear", "--work-dir", "out"], "evaluate": ["--checkpoint", "ck.safetensors",
                                                                               "--work-dir", "out"]}[command]
    if body_id == "list-not-mapping":
        argv = lambda e: [command, str(e.write("bad.yaml", body)), *extra]  # noqa: E731
    elif body_id == "base-missing":
        argv = lambda e: [command, str(e.write("bad.yaml", body + "seed: 1\n")), *extra]  # noqa: E731
    else:
        argv = lambda e: [command, config(e, body, base), *extra]  # noqa: E731
    return Case(f"{command}-config-{body_id}", argv, setup=lambda e: e.write("ck.safetensors", b""),
                outputs=("out", "work_dirs"))


CONFIG_CASES = [_config_case(command, body_id, body) for command in ("train", "pretrain", "probe", "evaluate")
                for body_id, body in BAD_CONFIG_BODIES.items()
                if not (command in ("pretrain", "probe") and body_id in ("num-classes-zero-for-train",))]

SET_CASES = [
    Case(f"train-set-{name}", (lambda value: lambda e: ["train", config(e, ""), "--set", value, "--work-dir", "out"])(value),
         outputs=("out",))
    for name, value in {
        "no-equals": "optim.lr", "unknown-key": "optim.learning_rate=0.1", "bad-type": "data.batch_size=many",
        "empty-key": "=3", "deep-unknown": "data.rgb.colour=red", "object-tag": "seed=!!python/name:os.system",
        "negative-threads": "train.cpu_threads=-2", "huge-clip": "data.clip_len=99999999999",
    }.items()
]


@pytest.mark.parametrize("case", CONFIG_CASES + SET_CASES, ids=lambda c: c.id)
def test_bad_configs(case: Case, env: Env, adversarial_data: Env) -> None:
    check_case(case, env, [adversarial_data.case])


# ----------------------------------------------------------------------------- absurd options

def _scores(env: Env, a: np.ndarray, b: np.ndarray) -> None:
    """Two streams' score files a.npy, b.npy and their shared labels.npy (3 samples)."""
    np.save(env.case / "a.npy", a)
    np.save(env.case / "b.npy", b)
    np.save(env.case / "labels.npy", np.arange(3))


OPTION_CASES = [
    Case(f"prepare-{name}", (lambda opts: lambda e: ["prepare", str(e.raw), "--out", "out", "--quiet", *opts])(opts),
         status=2)
    for name, opts in {
        "depth-size-60000": ["--depth-size", "60000"], "depth-size-0": ["--depth-size", "0"],
        "rgb-size-0": ["--rgb-size", "0"], "rgb-size-100000": ["--rgb-size", "100000"],
        "rgb-quality-101": ["--rgb-quality", "101"], "rgb-quality-0": ["--rgb-quality", "0"],
        "num-points-0": ["--num-points", "0"], "num-points-1e9": ["--num-points", "1000000000"],
        "max-actors-0": ["--max-actors", "0"], "max-actors-1000": ["--max-actors", "1000"],
        "workers-negative": ["--workers", "-1"], "workers-10000": ["--workers", "10000"],
        "limit-negative": ["--limit", "-1"], "modalities-unknown": ["--modalities", "skeleton,smell"],
        "modalities-empty": ["--modalities", ","], "workers-text": ["--workers", "two"],
    }.items()
] + [
    Case(f"synth-{name}", (lambda opts: lambda e: ["synth", "out", "--quiet", *opts])(opts), status=2)
    for name, opts in {
        "rgb-size-0x0": ["--rgb-size", "0x0"], "rgb-size-huge": ["--rgb-size", "99999x99999"],
        "rgb-size-text": ["--rgb-size", "big"], "rgb-size-negative": ["--rgb-size", "-5x10"],
        "workers-negative": ["--workers", "-3"], "scale-unknown": ["--scale", "enormous"],
    }.items()
] + [
    Case(f"probe-{name}", (lambda opts: lambda e: ["probe", config(e, "", MAMP_PROBE), "--work-dir", "out", *opts])(opts),
         status=2)
    for name, opts in {
        "percent-0": ["--protocol", "semi", "--percent", "0"], "percent-101": ["--protocol", "semi", "--percent", "101"],
        "percent-nan": ["--protocol", "semi", "--percent", "nan"], "percent-negative": ["--protocol", "semi",
                                                                                      "--percent", "-5"],
        "seeds-0": ["--protocol", "linear", "--seeds", "0"], "seeds-negative": ["--protocol", "linear", "--seeds", "-1"],
        "epochs-0": ["--protocol", "linear", "--epochs", "0"], "epochs-negative": ["--protocol", "linear",
                                                                                  "--epochs", "-2"],
        "protocol-unknown": ["--protocol", "telepathy"],
    }.items()
] + [
    Case(f"fuse-weights-{name}", (lambda weights: lambda e: ["fuse", "a.npy", "b.npy", "--weights", weights, "--out", "out"])(w),
         setup=lambda e: _scores(e, np.eye(3), np.eye(3)), status=2)
    for name, w in {"nan": "nan,1", "zeros": "0,0", "count": "1", "text": "a,b", "inf": "inf,1", "negative": "-1,2",
                    "empty": ",", "three": "1,1,1"}.items()
] + [
    Case("fuse-shape-mismatch", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: _scores(e, np.eye(3), np.eye(3, 4))),
    Case("fuse-nan-scores", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: _scores(e, np.full((3, 3), np.nan), np.eye(3)), match="NaN"),
    Case("fuse-labels-missing", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: (_scores(e, np.eye(3), np.eye(3)), (e.case / "labels.npy").unlink()), match="labels"),
    Case("fuse-labels-float", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: (_scores(e, np.eye(3), np.eye(3)), np.save(e.case / "labels.npy", np.ones(3)))),
    Case("fuse-good", lambda e: ["fuse", "a.npy", "b.npy", "--weights", "2,1", "--out", "out"],
         setup=lambda e: _scores(e, np.eye(3), np.eye(3)[::-1]), status=0,
         stdout_check=lambda out, e: (json.loads(out)["top1"] == 1.0) or pytest.fail(out)),
    Case("fuse-not-npy", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: (e.write("a.npy", b"garbage"), np.save(e.case / "b.npy", np.eye(3)))),
    Case("fuse-object-npy", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: (np.save(e.case / "a.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True),
                          np.save(e.case / "b.npy", np.eye(3)))),
    Case("fuse-1d-scores", lambda e: ["fuse", "a.npy", "b.npy", "--out", "out"],
         setup=lambda e: (np.save(e.case / "a.npy", np.ones(3)), np.save(e.case / "b.npy", np.ones(3)))),
    Case("visualize-frames-0", lambda e: ["visualize-poses", "x.mp4", "--out", "out/a.png", "--frames", "0"], status=2),
    Case("visualize-frames-huge", lambda e: ["visualize-poses", "x.mp4", "--out", "out/a.png", "--frames", "100000"],
         status=2),
    Case("visualize-bad-extension", lambda e: ["visualize-poses", "x.mp4", "--out", "out/a.gif"]),
    Case("extract-poses-workers-negative", lambda e: ["extract-poses", str(e.raw), "--out", "out", "--workers", "-2"],
         status=2),
    Case("extract-poses-max-persons-0", lambda e: ["extract-poses", str(e.raw), "--out", "out", "--max-persons", "0"],
         status=2),
    Case("extract-poses-unknown-backend", lambda e: ["extract-poses", str(e.raw), "--out", "out", "--backend", "oracle"],
         status=2),
    Case("extract-poses-mmpose-not-installed", lambda e: ["extract-poses", str(e.raw), "--out", "out", "--backend",
                                                           "mmpose", "--workers", "0", "--quiet"],
         status=2, match="pip install"),
    Case("extract-poses-unknown-layout", lambda e: ["extract-poses", str(e.raw), "--out", "out", "--layout", "octopus"],
         status=2),
    Case("export-pyskl-bad-modality", lambda e: ["export-pyskl", str(e.store), "--out", "out/a.pkl", "--modality", "x"],
         status=2),
    Case("convert-unknown-layout", lambda e: ["convert-checkpoint", "--from", "alexnet", "a.pth", "out/a.safetensors"],
         setup=lambda e: e.write("a.pth", b"x"), status=2),
    Case("convert-num-classes-negative", lambda e: ["convert-checkpoint", "--from", "stgcn", "--num-classes", "-1",
                                                     "a.pth", "out/a.safetensors"], setup=lambda e: e.write("a.pth", b"x"),
         status=(1, 2)),
]


@pytest.mark.parametrize("case", OPTION_CASES, ids=lambda c: c.id)
def test_absurd_options(case: Case, env: Env, adversarial_data: Env) -> None:
    check_case(case, env, [adversarial_data.case])


# ----------------------------------------------------------------------------- robustness options

ROBUSTNESS_CASES = [
    Case(f"robustness-{name}", (lambda opts: lambda e: ["robustness", config(e, ""), "--checkpoint", "ck.safetensors",
                                                         "--out", "out", *opts])(opts), status=2, match=match)
    for name, (opts, match) in {
        "corruption-unknown": (["--corruptions", "earthquake"], "unknown corruption"),
        "corruption-empty": (["--corruptions", ","], "unknown corruption"),
        "corruption-mixed-all": (["--corruptions", "all,jitter"], "unknown corruption"),
        "levels-unknown": (["--levels", "minor,apocalyptic"], "unknown level"),
        "levels-empty": (["--levels", ""], "unknown level"),
        "completion-finetec": (["--completion", "finetec"], "finetec"),
        "completion-unknown": (["--completion", "magic"], None),
        "seed-negative": (["--seed", "-1"], None),
        "seed-huge": (["--seed", str(2**40)], None),
    }.items()
] + [
    Case("robustness-nothing-to-score", lambda e: ["robustness", "--out", "out"], status=2, match="--checkpoint"),
    Case("robustness-config-without-checkpoint", lambda e: ["robustness", config(e, ""), "--out", "out"], status=2),
    Case("robustness-models-without-out", lambda e: ["robustness", "--models", "somewhere"], status=2, match="--out"),
    Case("robustness-models-not-a-work-dir", lambda e: ["robustness", "--models", MISSING, "--out", "out"], status=2,
         match="config.yaml"),
    Case("robustness-models-and-config", lambda e: ["robustness", config(e, ""), "--checkpoint", "x", "--models",
                                                    "somewhere", "--out", "out"], status=2),
    Case("robustness-missing-checkpoint", lambda e: ["robustness", config(e, ""), "--checkpoint", MISSING,
                                                     "--out", "out"], status=1),
    Case("robustness-missing-config", lambda e: ["robustness", MISSING + ".yaml", "--checkpoint", "x", "--out", "out"]),
    Case("robustness-bad-set", lambda e: ["robustness", config(e, ""), "--checkpoint", "x", "--out", "out",
                                          "--set", "data.clip_len=-4"], status=2),
]


@pytest.mark.parametrize("case", ROBUSTNESS_CASES, ids=lambda c: c.id)
def test_robustness_options(case: Case, env: Env, adversarial_data: Env) -> None:
    check_case(case, env, [adversarial_data.case])
