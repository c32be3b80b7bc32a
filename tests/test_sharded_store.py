"""Sharded store (``actionfusion pack``): the same samples, files and clips as the folder store, from a
local folder and from a real S3-compatible server (moto's, started on loopback); streaming order from
(seed, epoch); DDP rank split; resume; typed errors; training from S3 gives the folder store's metrics."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from actionfusion.datasets.clip_dataset import SkeletonClipDataset
from actionfusion.datasets.modality_clips import DepthClipReader, PointClipReader, RGBClipReader
from actionfusion.datasets.multimodal_clip_dataset import MultiModalClipDataset
from actionfusion.datasets.shard_stream import ShardStreamDataset
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.store.shard_layout import parse_size
from actionfusion.datasets.store.shard_pack import pack_store
from actionfusion.datasets.store.sharded_store import ShardedStore
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.errors import StoreError, UsageError
from actionfusion.pipeline.config import ConfigError, ExperimentConfig, load_config

pytestmark = pytest.mark.usefixtures("one_thread")

SHARD_SIZE = 200_000
"""Bytes per shard: the 27-sample synthetic store packs into 8 shards."""
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sharded")
    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny", actions=(1, 10, 58), performers=(1, 2, 3)),
                           workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(rgb_size=64, num_points=64), workers=0, progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def local_shards(store_path: Path) -> Path:
    out = store_path.parent / "shards"
    pack_store(store_path, out, shard_size=SHARD_SIZE)
    return out


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 (a free port) with the AWS test credentials in the environment."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'actionfusion[scale]')")
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install 'moto[server]')")
    saved = {key: os.environ.get(key) for key in ENV}
    os.environ.update(ENV)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}"}
    import s3fs

    s3fs.S3FileSystem(**options).mkdir("shards")
    yield options
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def s3_url(store_path: Path, s3_server: dict[str, Any]) -> str:
    pack_store(store_path, "s3://shards/synthetic", shard_size=SHARD_SIZE, storage_options=s3_server)
    return "s3://shards/synthetic"


def _open(kind: str, request: pytest.FixtureRequest) -> ShardedStore:
    if kind == "local":
        return ShardedStore(request.getfixturevalue("local_shards"))
    return ShardedStore(request.getfixturevalue("s3_url"), request.getfixturevalue("s3_server"))


def _readers() -> dict[str, Any]:
    return {"rgb": RGBClipReader(4, 32, (0.8, 1.0)), "depth": DepthClipReader(4, 32, (0.8, 1.0)),
            "points": PointClipReader(4, 32)}


def _jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x[:, :20] + rng.normal(0.0, 0.01, size=x[:, :20].shape).astype(np.float32)


def _assert_items_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_parse_size() -> None:
    assert parse_size("1GB") == 1 << 30 and parse_size("256MiB") == 256 << 20 and parse_size("1000") == 1000
    with pytest.raises(ValueError):
        parse_size("lots")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_same_samples_meta_and_files(store_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    folder, shards = SampleStore(store_path), _open(kind, request)
    assert shards.names == folder.names and len(shards) == 27 and len(shards.shards) == 8
    assert shards.manifest == folder.manifest
    for name in folder.names:
        assert shards.meta(name) == folder.meta(name) and shards.label(name) == folder.label(name)
        for modality in sorted(folder.modalities(name)):
            if modality in ("rgb", "depth"):
                assert np.array_equal(getattr(shards, f"load_{modality}")(name), getattr(folder, f"load_{modality}")(name))
            else:
                assert np.array_equal(shards._load_array(name, modality), folder._load_array(name, modality))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_same_clips_as_the_folder_store(store_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    folder, shards = SampleStore(store_path), _open(kind, request)
    names = folder.names[::3]
    for make in (lambda s: SkeletonClipDataset(s, names, _jitter, clip_len=16, seed=3),
                 lambda s: MultiModalClipDataset(s, names, _readers(), skeleton_transform=_jitter, clip_len=16,
                                                 seed=3, train=True)):
        a, b = make(folder), make(shards)
        a.set_epoch(2), b.set_epoch(2)
        for index in range(len(names)):
            _assert_items_equal(a[index], b[index])


def test_stream_order_is_deterministic_per_epoch_and_items_match(local_shards: Path, store_path: Path) -> None:
    store = ShardedStore(local_shards)
    dataset = SkeletonClipDataset(store, store.names, _jitter, clip_len=16, seed=5)
    stream = ShardStreamDataset(dataset, seed=5)
    orders = []
    for epoch in (0, 0, 1):
        stream.set_epoch(epoch)
        orders.append([int(item["index"]) for item in stream])
    assert orders[0] == orders[1] and orders[0] != orders[2]
    assert sorted(orders[0]) == list(range(27)) == sorted(orders[2])
    # each streamed item is the random-access item of the same epoch (folder store)
    reference = SkeletonClipDataset(SampleStore(store_path), store.names, _jitter, clip_len=16, seed=5)
    reference.set_epoch(1)
    stream.set_epoch(1)
    for item in stream:
        _assert_items_equal(item, reference[int(item["index"])])
    assert stream.shard_order(0) != stream.shard_order(1) and sorted(stream.shard_order(0)) == list(range(8))


def test_ddp_ranks_read_disjoint_shards_covering_all(local_shards: Path) -> None:
    store = ShardedStore(local_shards)
    dataset = SkeletonClipDataset(store, store.names, _jitter, clip_len=16)
    for world in (2, 3):
        streams = [ShardStreamDataset(dataset, seed=1, rank=r, world_size=world) for r in range(world)]
        shards = [set(s.rank_shards(4)) for s in streams]
        assert sum(map(len, shards)) == 8 and set().union(*shards) == set(range(8))
        for s in streams:
            s.set_epoch(4)
        seen = [[int(item["index"]) for item in s] for s in streams]
        flat = [i for part in seen for i in part]
        assert sorted(flat) == list(range(27))  # disjoint and covering
        assert [len(part) for part in seen] == [s.rank_length(4) for s in streams]
        for s, part in zip(streams, seen):  # a rank reads only its own shards
            assert {store.shard_of(store.names[i]) for i in part} == set(s.rank_shards(4))


def test_stream_resume_skips_consumed_items(local_shards: Path) -> None:
    store = ShardedStore(local_shards)
    names = store.names[:20]  # a split: shards also hold samples outside it
    stream = ShardStreamDataset(SkeletonClipDataset(store, names, _jitter, clip_len=16), seed=2)
    stream.set_epoch(3)
    full = [int(item["index"]) for item in stream]
    assert sorted(full) == list(range(20))
    for skip in (0, 1, 7, 19, 20):
        stream.set_epoch(3, skip=skip)
        assert [int(item["index"]) for item in stream] == full[skip:]


def test_loader_workers_get_their_own_connection(local_shards: Path) -> None:
    store = ShardedStore(local_shards)
    stream = ShardStreamDataset(SkeletonClipDataset(store, store.names, _jitter, clip_len=16), seed=0)
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2)
    indices = sorted(int(i) for batch in loader for i in batch["index"])
    assert indices == list(range(27))


def test_errors_are_typed_and_name_the_problem(local_shards: Path, store_path: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(local_shards, broken)
    (broken / "shard-000003.tar").unlink()
    store = ShardedStore(broken)
    name = store.shards[3].names[0]
    with pytest.raises(StoreError, match=r"shard-000003\.tar is missing.*actionfusion pack"):
        store.load_skeleton(name)
    index = broken / "shard-000002.index.json"
    index.write_bytes(index.read_bytes().replace(b'"label"', b'"lab_l"', 1))
    with pytest.raises(StoreError, match=r"shard-000002\.index\.json: checksum differs"):
        ShardedStore(broken)
    with pytest.raises(StoreError, match=r"shards\.json is missing"):
        ShardedStore(tmp_path / "nothing")
    # a damaged member: same size, one byte flipped
    damaged = tmp_path / "damaged"
    shutil.copytree(local_shards, damaged)
    shards = ShardedStore(damaged)
    name = shards.shards[0].names[0]
    start, size = shards._samples[name][2]["skeleton.npy"]
    data = bytearray((damaged / "shard-000000.tar").read_bytes())
    data[start + size - 1] ^= 0xFF
    (damaged / "shard-000000.tar").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum mismatch"):
        shards.load_skeleton(name)
    with pytest.raises(StoreError, match="checksum mismatch"):
        list(shards.iter_shard(0))
    with pytest.raises(UsageError, match="--overwrite"):
        pack_store(store_path, local_shards)


def test_unreachable_endpoint_is_one_typed_line(store_path: Path, s3_server: dict[str, Any]) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "config_kwargs": {"retries": {"max_attempts": 1}}}
    with pytest.raises(StoreError, match="endpoint is reachable") as caught:
        ShardedStore("s3://shards/synthetic", options)
    assert "\n" not in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)


def test_credentials_in_the_config_are_refused() -> None:
    base = ExperimentConfig().to_dict()
    base["data"]["storage_options"] = {"secret_access_key": "x"}
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        ExperimentConfig.from_dict(base)


def _metrics(work_dir: Path) -> dict[str, Any]:
    metrics = json.loads((work_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in ("work_dir", "time", "seconds", "elapsed", "store")}


def test_training_from_s3_shards_gives_the_folder_store_metrics(store_path: Path, s3_url: str,
                                                               s3_server: dict[str, Any], tmp_path: Path) -> None:
    from actionfusion.pipeline.trainer import train

    overrides = ["data.clip_len=16", "data.num_workers=0", "data.batch_size=8", "schedule.epochs=2",
                 "schedule.milestones=[]", "schedule.warmup_epochs=0", "data.modalities=[skeleton]",
                 "model.kwargs.hidden_channels=8", "model.kwargs.hidden_dim=16", "train.cpu_threads=1"]
    runs = {}
    for kind, store in (("folder", str(store_path)), ("s3", s3_url)):
        extra = [f"data.storage_options={json.dumps(s3_server)}"] if kind == "s3" else []
        cfg = load_config("configs/synthetic/stgcn.yaml", [f"data.store={store}", *overrides, *extra])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train(cfg, tmp_path / kind, progress=False)
        runs[kind] = _metrics(tmp_path / kind)
    assert runs["s3"] == runs["folder"]
    history = [json.loads((tmp_path / k / "history.json").read_text()) for k in ("folder", "s3")]
    assert [h["train_loss"] for h in history[0]] == [h["train_loss"] for h in history[1]]


def test_pack_command_writes_shards_reports_them_and_refuses_to_overwrite(store_path: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    from actionfusion.pipeline.cli import main

    out = tmp_path / "packed"
    assert main(["pack", str(store_path), "--out", str(out), "--shard-size", "200KB"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    packed = ShardedStore(str(out))
    assert sorted(packed.names) == sorted(SampleStore(store_path).names)
    assert report and json.dumps(report)  # one JSON line
    assert main(["pack", str(store_path), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overwrite" in err[0]
    assert main(["pack", str(store_path), "--out", str(tmp_path / "x"), "--shard-size", "lots"]) == 2
    assert "--shard-size" in capsys.readouterr().err


def _streaming_loader(store: ShardedStore, names: list[str], rank: int, world: int, workers: int, batch: int = 4,
                      seed: int = 7) -> torch.utils.data.DataLoader:
    from actionfusion.pipeline.distributed import DistContext
    from actionfusion.pipeline.loaders import build_train_loader

    ctx = DistContext(rank, world, rank, torch.device("cpu"), None)  # rank and world given directly: no process group
    dataset = SkeletonClipDataset(store, names, _jitter, clip_len=16, seed=seed)
    return build_train_loader(dataset, ctx, batch, workers, seed, streaming=True)


def _epoch_indices(loader: torch.utils.data.DataLoader, epoch: int) -> list[list[int]]:
    from actionfusion.pipeline.loaders import set_loader_epoch

    set_loader_epoch(loader, epoch)
    return [[int(i) for i in batch["index"]] for batch in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_loader_gives_every_rank_len_batches_of_per_rank_items(local_shards: Path, workers: int) -> None:
    store = ShardedStore(local_shards)
    names = store.names[1:]  # 26 of the 27: the shards also hold a sample outside the split
    for world, per_rank in ((1, 26), (2, 13), (3, 9)):
        seen = []
        for rank in range(world):
            loader = _streaming_loader(store, names, rank, world, workers)
            assert len(loader) == -(-per_rank // 4)
            for epoch in (0, 1):
                batches = _epoch_indices(loader, epoch)
                assert len(batches) == len(loader)  # the same every epoch: the scheduler's step count holds
                assert sum(map(len, batches)) == per_rank and max(map(len, batches)) == 4
                if epoch == 0:
                    seen.append([i for b in batches for i in b])
        assert set().union(*map(set, seen)) == set(range(26))  # every sample, every epoch, all ranks together
        if workers:  # the workers split the rank's items: the same items as one process reads
            assert [sorted(s) for s in seen] == [sorted(i for b in _epoch_indices(_streaming_loader(
                store, names, rank, world, 0), 0) for i in b) for rank in range(world)]


def test_streaming_order_is_a_function_of_seed_and_epoch(local_shards: Path) -> None:
    store = ShardedStore(local_shards)
    loader = _streaming_loader(store, store.names, 1, 2, workers=2)
    first = [_epoch_indices(loader, epoch) for epoch in (0, 1, 2)]
    assert first[0] != first[1] != first[2]  # the workers follow the epoch set in the main process
    again = _streaming_loader(store, store.names, 1, 2, workers=2)
    assert [_epoch_indices(again, epoch) for epoch in (2, 0)] == [first[2], first[0]]  # any epoch, any order
    assert _epoch_indices(_streaming_loader(store, store.names, 1, 2, workers=2, seed=8), 0) != first[0]


def test_shard_streaming_needs_a_sharded_store(store_path: Path) -> None:
    from actionfusion.pipeline.data_builder import build_datasets

    cfg = load_config("configs/synthetic/stgcn.yaml", [f"data.store={store_path}", "data.shard_streaming=true"])
    with pytest.raises(ConfigError, match=r"data\.shard_streaming: .*folder store.*actionfusion pack") as caught:
        build_datasets(cfg)
    assert "\n" not in str(caught.value)


def test_training_with_shard_streaming_resumes_bit_exact(local_shards: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file

    from actionfusion.pipeline.data_builder import build_datasets
    from actionfusion.pipeline.trainer import train

    cfg = load_config("configs/synthetic/stgcn.yaml", [
        f"data.store={local_shards}", "data.shard_streaming=true", "data.clip_len=16", "data.num_workers=2",
        "data.batch_size=8", "schedule.epochs=2", "schedule.milestones=[]", "schedule.warmup_epochs=0",
        "data.modalities=[skeleton]", "model.kwargs.hidden_channels=8", "model.kwargs.hidden_dim=16",
        "train.cpu_threads=1"])
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(cfg, straight, progress=False)
        shutil.copytree(straight, resumed)
        shutil.rmtree(resumed / "checkpoints" / "epoch_0002")  # as if killed after epoch 1's checkpoint
        train(cfg, resumed, resume=True, progress=False)
        steps = -(-len(build_datasets(cfg)["train"]) // 8)  # one process: ceil(N / 8) batches an epoch
    a, b = (load_file(run / "checkpoints" / "epoch_0002" / "model.safetensors") for run in (straight, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = [json.loads((run / "history.json").read_text()) for run in (straight, resumed)]
    assert history[0] == history[1] and [h["global_step"] for h in history[0]] == [steps, 2 * steps]
