"""Experiment configs: every shipped YAML parses, keys and types are checked, overrides and _base_ work."""

from __future__ import annotations

from pathlib import Path

import pytest

from actionfusion.errors import ActionFusionError
from actionfusion.pipeline.config import (
    ConfigError,
    ExperimentConfig,
    load_config,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ENCODERS = ("stgcn", "ctrgcn", "stgcnpp", "hypergcn", "psumnet", "mamp")
BENCHMARK_DIRS = ("ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset", "synthetic")
# Every experiment config of the training pipeline (other folders, e.g. pose3d/, hold other schemas).
OTHER_DATASET_DIRS = ("pku_mmd", "nw_ucla", "custom")
ALL_CONFIGS = sorted([CONFIGS / "base" / "skeleton.yaml", CONFIGS / "base" / "synthetic.yaml"]
                     + [p for d in BENCHMARK_DIRS + OTHER_DATASET_DIRS for p in (CONFIGS / d).glob("*.yaml")])


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_every_encoder_has_a_config_per_benchmark() -> None:
    missing = [f"{d}/{m}.yaml" for d in BENCHMARK_DIRS for m in ENCODERS if not (CONFIGS / d / f"{m}.yaml").is_file()]
    assert not missing


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_config_parses(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


def test_shipped_configs_match_their_folder() -> None:
    names = set()
    for directory in BENCHMARK_DIRS:
        for model in ENCODERS:
            cfg = load_config(CONFIGS / directory / f"{model}.yaml")
            benchmark = "ntu60_xsub" if directory == "synthetic" else directory
            assert cfg.data.benchmark == benchmark, (directory, model)
            assert cfg.model.num_classes == (120 if directory.startswith("ntu120") else 60), (directory, model)
            assert cfg.model.name == model
            if directory == "synthetic":
                assert cfg.data.store == "demo_output/store"
            else:
                assert cfg.data.store == ("data/ntu120_store" if directory.startswith("ntu120") else "data/ntu60_store")
            names.add(cfg.experiment)
    assert len(names) == len(BENCHMARK_DIRS) * len(ENCODERS)  # no copy-pasted experiment name


def test_official_recipes() -> None:
    ctr = load_config(CONFIGS / "ntu60_xsub" / "ctrgcn.yaml")
    assert (ctr.optim.lr, ctr.optim.weight_decay, ctr.data.batch_size, ctr.schedule.epochs) == (0.1, 4e-4, 64, 65)
    assert ctr.schedule.milestones == [35, 55] and ctr.schedule.warmup_epochs == 5 and ctr.optim.nesterov
    st = load_config(CONFIGS / "ntu120_xset" / "stgcn.yaml")
    assert (st.optim.lr, st.optim.weight_decay, st.schedule.epochs, st.schedule.milestones) == (0.1, 1e-4, 80, [10, 50])
    pp = load_config(CONFIGS / "ntu60_xview" / "stgcnpp.yaml")
    assert (pp.schedule.name, pp.schedule.epochs, pp.data.batch_size, pp.optim.weight_decay) == ("cosine", 80, 128, 5e-4)
    hy = load_config(CONFIGS / "ntu120_xsub" / "hypergcn.yaml")
    assert (hy.optim.lr, hy.schedule.epochs, hy.schedule.milestones, hy.train.label_smoothing) == (0.05, 140, [110, 120], 0.1)
    ps = load_config(CONFIGS / "ntu60_xsub" / "psumnet.yaml")
    assert (ps.data.stream, ps.data.batch_size, ps.optim.weight_decay, ps.schedule.epochs) == ("unified12", 200, 5e-4, 200)
    mamp = load_config(CONFIGS / "ntu120_xset" / "mamp.yaml")
    assert (mamp.optim.name, mamp.optim.lr, mamp.optim.layer_decay, mamp.optim.weight_decay) == ("adamw_layer_decay", 3e-4, 0.8, 0.05)
    assert (mamp.data.clip_len, mamp.data.batch_size, mamp.schedule.epochs, mamp.schedule.min_lr) == (120, 48, 100, 1e-5)
    assert mamp.train.label_smoothing == 0.1 and mamp.model.num_classes == 120


def test_synthetic_configs_share_the_synthetic_base() -> None:
    # The deviations each synthetic config documents in its comments, and nothing else.
    kwargs_changed = {"stgcn": {"block_dropout"}, "mamp": {"num_frames", "drop_path_rate"}}
    optimizer_changed = {"mamp": "adamw"}  # from scratch: no layer-wise decay (that is for fine-tuning)
    clip_len = {"mamp": 16}
    for model in ENCODERS:
        cfg = load_config(CONFIGS / "synthetic" / f"{model}.yaml")
        recipe = load_config(CONFIGS / "ntu60_xsub" / f"{model}.yaml")
        assert cfg.data.clip_len == clip_len.get(model, 32) and cfg.data.batch_size <= 16  # short clips, small batches
        assert cfg.schedule.epochs < recipe.schedule.epochs
        assert cfg.data.stream == recipe.data.stream
        assert cfg.optim.name == optimizer_changed.get(model, recipe.optim.name)
        changed = kwargs_changed.get(model, set())
        assert {k: v for k, v in cfg.model.kwargs.items() if k not in changed} == \
            {k: v for k, v in recipe.model.kwargs.items() if k not in changed}, model


def test_synthetic_mamp_embedding_matches_the_clip() -> None:
    cfg = load_config(CONFIGS / "synthetic" / "mamp.yaml")
    assert cfg.model.kwargs["num_frames"] == cfg.data.clip_len and cfg.data.clip_len % 4 == 0


def test_unknown_key_names_the_key_and_the_allowed_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "data: {clip_lenn: 32}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "data.clip_lenn"
    assert "clip_len" in str(info.value) and "benchmark" in str(info.value)
    assert isinstance(info.value, ActionFusionError)
    with pytest.raises(ConfigError, match="^bogus: unknown key"):
        load_config(_write(tmp_path / "d.yaml", "bogus: 1\n"))


def test_overrides_dotted_lists_and_kwargs(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "experiment: x\nmodel: {name: ctrgcn, kwargs: {drop_rate: 0.0}}\n")
    cfg = load_config(path, ["data.clip_len=32", "model.kwargs.drop_rate=0.1", "schedule.milestones=[2,3]",
                             "optim.lr=1e-4", "train.grad_clip=5", "optim.layer_decay=null",
                             "data.train_transforms=[{name: random_rotation, max_angle: 0.1}]"])
    assert cfg.data.clip_len == 32
    assert cfg.model.kwargs == {"drop_rate": 0.1}
    assert cfg.schedule.milestones == [2, 3]
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.train.grad_clip == 5.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.data.train_transforms == [{"name": "random_rotation", "max_angle": 0.1}]
    # Later overrides win; keys under kwargs are free.
    cfg = load_config(path, ["data.clip_len=32", "data.clip_len=48", "model.kwargs.extra.depth=2"])
    assert cfg.data.clip_len == 48 and cfg.model.kwargs["extra"] == {"depth": 2}


@pytest.mark.parametrize("override, key", [
    ("data.clip_len=abc", "data.clip_len"),        # a string for an int
    ("data.clip_len=3.5", "data.clip_len"),        # a float for an int
    ("seed=true", "seed"),                         # a bool is not an int
    ("train.amp=1", "train.amp"),                  # an int is not a bool
    ("optim.lr=fast", "optim.lr"),
    ("schedule.milestones=[1, x]", "schedule.milestones[1]"),
    ("optim.betas=0.9", "optim.betas"),
    ("data.stream=bones", "data.stream"),
    ("data.benchmark=ntu60", "data.benchmark"),
    ("data.clip_len=0", "data.clip_len"),
    ("data.validation_fraction=1", "data.validation_fraction"),
    ("data.nonsense=1", "data.nonsense"),
    ("data.clip_len.deep=1", "data.clip_len"),      # an int field is not a mapping
    ("data.train_transforms=[{name: stream, stream: bone}]", "data.train_transforms[0]"),
    ("model.name=null", "model.name"),
    ("optim.name=lamb", "optim.name"),
    ("schedule.name=plateau", "schedule.name"),
    ("optim.layer_decay=0.8", "optim.layer_decay"),  # sgd does not use it
])
def test_bad_overrides_raise_config_error_naming_the_key(tmp_path: Path, override: str, key: str) -> None:
    path = _write(tmp_path / "c.yaml", "experiment: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_malformed_override_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "experiment: x\n")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(path, ["data.clip_len"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path / "list.yaml", "- 1\n- 2\n"))


def test_base_inheritance_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    _write(tmp_path / "base" / "b.yaml", (
        "seed: 3\n"
        "data: {clip_len: 64, batch_size: 8, train_transforms: [{name: random_rotation}, {name: random_scale}]}\n"
        "model: {name: ctrgcn, kwargs: {a: 1, b: 2}}\n"
        "schedule: {milestones: [10, 20]}\n"
    ))
    _write(tmp_path / "mid" / "m.yaml", "_base_: ../base/b.yaml\ndata: {batch_size: 4}\nmodel: {kwargs: {b: 3}}\n")
    child = _write(tmp_path / "exp" / "c.yaml", (
        "_base_: ../mid/m.yaml\nexperiment: child\n"
        "data: {clip_len: 32, train_transforms: [{name: mirror_flip}]}\nschedule: {milestones: [5]}\n"
    ))
    cfg = load_config(child, ["data.batch_size=2"])
    assert cfg.experiment == "child" and cfg.seed == 3
    assert (cfg.data.clip_len, cfg.data.batch_size) == (32, 2)
    assert cfg.data.train_transforms == [{"name": "mirror_flip"}]  # lists are replaced, not appended
    assert cfg.model.kwargs == {"a": 1, "b": 3}  # mappings merge key by key
    assert cfg.schedule.milestones == [5]


def test_base_cycle_and_missing_base(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", "_base_: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml") as info:
        load_config(tmp_path / "c.yaml")
    assert info.value.key == "_base_"


def test_experiment_defaults_to_the_file_stem(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path / "my_run.yaml", "seed: 1\n")).experiment == "my_run"


def test_save_then_load_gives_the_same_config(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "synthetic" / "mamp.yaml", ["optim.lr=1e-5", "model.kwargs.drop_rate=0.25"])
    out = tmp_path / "saved" / "config.yaml"
    out.parent.mkdir()
    save_config(cfg, out)
    assert load_config(out) == cfg
    assert not [p for p in out.parent.iterdir() if p.name != "config.yaml"]  # no temp file left behind


def test_configs_are_frozen() -> None:
    cfg = ExperimentConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.data.clip_len = 1  # type: ignore[misc]


def test_every_shipped_config_builds_its_clip_pipelines() -> None:
    pytest.importorskip("actionfusion.modalities.skeleton.transforms")
    import numpy as np

    from actionfusion.pipeline.data_builder import build_transform

    x = np.random.default_rng(0).normal(size=(2, 40, 25, 3)).astype(np.float32)
    for path in ALL_CONFIGS:
        cfg = load_config(path)
        channels = 12 if cfg.data.stream == "unified12" else 3
        for train in (True, False):
            clip = build_transform(cfg.data, train)(x.copy(), np.random.default_rng(1))
            assert clip.shape == (2, cfg.data.clip_len, 25, channels), (path, train)


@pytest.mark.parametrize("model", ENCODERS)
def test_synthetic_config_model_accepts_its_clips(model: str) -> None:
    """The model each synthetic config names builds with its kwargs and takes the configured clip."""
    torch = pytest.importorskip("torch")
    from actionfusion import registry

    cfg = load_config(CONFIGS / "synthetic" / f"{model}.yaml")
    net = registry.create_model(cfg.model.name, num_classes=cfg.model.num_classes, **cfg.model.kwargs)
    channels = 12 if cfg.data.stream == "unified12" else 3
    x = torch.zeros(2, cfg.data.max_persons, cfg.data.clip_len, 25, channels)
    x[:, 0] = torch.linspace(-1, 1, cfg.data.clip_len * 25 * channels).reshape(cfg.data.clip_len, 25, channels)
    torch.set_num_threads(1)
    net.eval()
    with torch.no_grad():
        logits = net(x)
    assert logits.shape == (2, cfg.model.num_classes)
