"""``pretrain`` then ``probe`` on a tiny synthetic store, through the CLI: every protocol writes its
metrics and plot, the linear probe leaves the encoder untouched, kNN equals a plain reference, and
semi-supervised subsets differ per seed and cover every class."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.pipeline.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MAMP = ["model.kwargs.num_frames=16", "model.kwargs.embed_dim=32", "model.kwargs.depth=1",
             "model.kwargs.num_heads=2", "data.clip_len=16", "data.batch_size=8", "data.num_workers=0",
             "train.amp=false", "schedule.warmup_epochs=0"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("probe")
    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny", modalities=("skeleton",)), workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton",)), workers=0, progress=False)
    sets = [f"--set={o}" for o in TINY_MAMP + [f"data.store={root / 'store'}", "schedule.epochs=2",
                                                   "objective.kwargs.num_frames=16", "objective.kwargs.encoder_dim=32",
                                                   "objective.kwargs.decoder_dim=32", "objective.kwargs.decoder_depth=1",
                                                   "objective.kwargs.decoder_heads=2", "train.knn_every=1",
                                                   "model.kwargs.embed_dim=32"]]
    assert main(["pretrain", "configs/synthetic/mamp_pretrain.yaml", "--work-dir", str(root / "pre"), *sets]) == 0
    return {"root": root, "weights": root / "pre" / "encoder.safetensors",
            "sets": [f"--set={o}" for o in TINY_MAMP + [f"data.store={root / 'store'}", "model.kwargs.head_hidden_dim=16",
                                                        "data.validation_fraction=0"]]}


def _probe(pretrained: dict, protocol: str, *extra: str) -> dict:
    out = pretrained["root"] / f"probe_{protocol}{'_'.join(extra)}"
    args = ["probe", "configs/synthetic/mamp_probe.yaml", "--pretrained", str(pretrained["weights"]),
            "--protocol", protocol, "--work-dir", str(out), "--epochs", "1", *extra, *pretrained["sets"]]
    assert main(args) == 0
    assert (out / "embedding_test.png").stat().st_size > 1000
    return {"dir": out, **json.loads((out / "metrics.json").read_text())}


def test_pretraining_writes_encoder_objective_and_knn(pretrained):
    pre = pretrained["root"] / "pre"
    metrics = json.loads((pre / "metrics.json").read_text())
    assert metrics["objective"] == "mamp" and set(metrics["test_knn_top1"]) <= {"1", "2", "5", "10"}
    decoder = load_file(pre / "objective.safetensors")
    assert any(k.startswith("decoder.") for k in decoder)
    history = json.loads((pre / "history.json").read_text())
    assert "val_knn_top1" in history[-1] and "train_mse" in history[-1]


def test_linear_probe_trains_the_head_only(pretrained):
    result = _probe(pretrained, "linear")
    trained = load_file(result["dir"] / "seed_0" / "best.safetensors")
    encoder = load_file(pretrained["weights"])
    assert all(torch.equal(trained[f"encoder.{k}"], v) for k, v in encoder.items())
    assert {"head.fc.weight", "head.norm.running_mean"} <= set(trained)
    assert 0.0 <= result["top1"]["mean"] <= 1.0


def test_knn_probe_equals_a_plain_reference(pretrained):
    from actionfusion.pipeline.config import load_config
    from actionfusion.pipeline.data_builder import build_datasets
    from actionfusion.pipeline.distributed import init_distributed
    from actionfusion.pipeline.feature_bank import pooled_features
    from actionfusion.pipeline.loaders import build_eval_loader
    from actionfusion.pipeline.probe import encoder_with_weights

    result = _probe(pretrained, "knn")
    cfg = load_config("configs/synthetic/mamp_probe.yaml", [s.split("=", 1)[1] for s in pretrained["sets"]])
    model = encoder_with_weights(cfg, str(pretrained["weights"]))
    datasets = build_datasets(cfg, train_eval=True)
    ctx = init_distributed()
    bank, bank_labels = pooled_features(model, build_eval_loader(datasets["train_eval"], ctx, 8, 0), ctx)
    test, test_labels = pooled_features(model, build_eval_loader(datasets["test"], ctx, 8, 0), ctx)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    test /= np.linalg.norm(test, axis=1, keepdims=True)
    nearest = np.argmax(test @ bank.T, axis=1)
    assert result["top1"]["1"] == pytest.approx(float(np.mean(bank_labels[nearest] == test_labels)))


def test_semi_subsets_differ_per_seed_and_cover_every_class(pretrained):
    result = _probe(pretrained, "semi", "--percent", "40", "--seeds", "2")
    subsets = [json.loads((result["dir"] / f"seed_{s}" / "labelled_subset.json").read_text()) for s in (0, 1)]
    assert subsets[0] != subsets[1]
    actions = [{name[-4:] for name in subset} for subset in subsets]
    assert actions[0] == actions[1] == {"A001", "A003", "A023", "A028", "A058"}
    assert result["top1"]["runs"] == 2 and result["percent"] == 40.0


def test_fewshot_probe_reports_episodes(pretrained):
    result = _probe(pretrained, "fewshot")
    assert result["held_out_of_pretraining"] is False
    one_shot = result["settings"]["5way_1shot"]
    assert one_shot["episodes"] == 1000 and 0.0 <= one_shot["accuracy_mean"] <= 1.0


def test_transfer_pretrains_on_the_source_and_fine_tunes_on_another_benchmark(pretrained):
    """Source: MAMP pretraining on the store's ntu60_xsub; target: a user's list of the same samples with
    their own 5 class names (another label space: the head has 5 outputs, ``num_classes: auto``)."""
    from actionfusion.datasets.ntu.names import parse_sample_name
    from actionfusion.datasets.store.sample_store import SampleStore

    root = pretrained["root"]
    names = SampleStore(root / "store").names
    rows = ["sample,split,label"] + [f"{n},{'train' if parse_sample_name(n).performer == 1 else 'test'},"
                                     f"action{parse_sample_name(n).action:03d}" for n in names]
    (root / "target.csv").write_text("\n".join(rows) + "\n")
    source = [f"--source-set={o}" for o in TINY_MAMP + [f"data.store={root / 'store'}", "schedule.epochs=1",
                                                         "objective.kwargs.num_frames=16", "objective.kwargs.encoder_dim=32",
                                                         "objective.kwargs.decoder_dim=32", "objective.kwargs.decoder_depth=1",
                                                         "objective.kwargs.decoder_heads=2"]]
    out = root / "transfer"
    args = ["probe", "configs/synthetic/mamp_probe.yaml", "--protocol", "transfer", "--source-config",
            "configs/synthetic/mamp_pretrain.yaml", *source, "--work-dir", str(out), "--epochs", "1",
            *pretrained["sets"], f"--set=data.benchmark={root / 'target.csv'}", "--set=model.num_classes=auto"]
    assert main(args) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["protocol"] == "transfer" and result["source"]["benchmark"] == "ntu60_xsub"
    assert result["target"]["benchmark"].endswith("target.csv")
    encoder = out / "pretrain" / "encoder.safetensors"
    assert result["source"]["pretrained"] == str(encoder)
    trained = load_file(out / "seed_0" / "best.safetensors")
    assert trained["head.fc2.weight"].shape[0] == 5  # the target's 5 classes, not the source's 60
    assert json.loads((out / "seed_0" / "classes.json").read_text()) == [f"action{a:03d}" for a in (1, 3, 23, 28, 58)]
    stamp = encoder.stat().st_mtime_ns
    assert main(args) == 0  # finished: neither the pretraining nor the fine-tuning runs again
    assert encoder.stat().st_mtime_ns == stamp
