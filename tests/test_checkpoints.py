"""Checkpoints: safetensors weights, pickle-free optimizer state, atomic epochs, pruning, best."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

from actionfusion.errors import CheckpointError, UnsafeLoadError
from actionfusion.pipeline.checkpoints import (
    flatten_optimizer_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    read_weights,
    save_best,
    save_checkpoint,
    save_weights,
    unflatten_optimizer_state,
)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def _train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=generator)
        y = torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.05),
])
def test_checkpoint_round_trip_continues_identically(tmp_path, make_opt):
    model = _model(0)
    optimizer = make_opt(model.parameters())
    _train_steps(model, optimizer, 3)
    torch.manual_seed(99)
    rng_before = torch.get_rng_state()
    path = save_checkpoint(tmp_path, 1, model, optimizer, {"global_step": 3, "best": {"top1": 0.5}})
    assert {p.name for p in path.iterdir()} == {"model.safetensors", "trainer_state.safetensors", "trainer_state.json"}
    json.loads((path / "trainer_state.json").read_text())  # plain JSON, no pickle anywhere
    # Continue the original for two more steps.
    _train_steps(model, optimizer, 2, seed=1)

    restored = _model(5)
    restored_opt = make_opt(restored.parameters())
    torch.manual_seed(12345)
    state = load_checkpoint(path, restored, restored_opt)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert state["global_step"] == 3 and state["epoch"] == 1 and state["best"] == {"top1": 0.5}
    _train_steps(restored, restored_opt, 2, seed=1)
    for (name, a), b in zip(model.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name  # bit-identical: momentum / Adam moments were restored


def test_flatten_optimizer_state_is_json_plus_tensors():
    model = _model(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _train_steps(model, optimizer, 1)
    tensors, structure = flatten_optimizer_state(optimizer.state_dict())
    json.dumps(structure)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    assert {k.split(".")[-1] for k in tensors} == {"step", "exp_avg", "exp_avg_sq"}
    back = unflatten_optimizer_state(tensors, structure)
    original = optimizer.state_dict()
    assert back["param_groups"] == original["param_groups"]
    assert torch.equal(back["state"][0]["exp_avg"], original["state"][0]["exp_avg"])


def test_keep_last_prunes_and_latest_ignores_staging(tmp_path):
    model = _model(0)
    for epoch in range(1, 6):
        save_checkpoint(tmp_path, epoch, model, None, {"global_step": epoch}, keep_last=2)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [4, 5]
    # A half-written (staging) epoch or an incomplete directory is never "latest".
    (tmp_path / "checkpoints" / ".tmp-epoch_0006.abc").mkdir()
    (tmp_path / "checkpoints" / "epoch_0007").mkdir()
    assert latest_checkpoint(tmp_path).name == "epoch_0005"
    save_checkpoint(tmp_path, 6, model, None, {"global_step": 6}, keep_last=2)
    assert not (tmp_path / "checkpoints" / ".tmp-epoch_0006.abc").exists()
    assert [e for e, _ in list_checkpoints(tmp_path)] == [5, 6]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weights_load_safely_and_refuse_pickles(tmp_path):
    model = _model(0)
    save_weights(tmp_path / "w.safetensors", model)
    other = _model(1)
    load_weights(tmp_path / "w.safetensors", other)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    # A DDP-style .pt state_dict nested under "state_dict" loads with weights_only=True.
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pt")
    assert set(read_weights(tmp_path / "w.pt")) == set(model.state_dict())
    # An arbitrary pickled object is refused, never executed.
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"x": object()}, handle)
    with pytest.raises(UnsafeLoadError):
        read_weights(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="2 missing keys .bias, weight., 9 unexpected"):
        load_weights(tmp_path / "w.safetensors", nn.Linear(4, 6))  # strict: mismatching keys
    same_keys = _model(1)
    first = next(name for name, _ in same_keys.named_parameters())
    state = dict(_model(0).state_dict())
    state[first] = torch.zeros(tuple(state[first].shape) + (2,))
    save_weights_file = tmp_path / "reshaped.safetensors"
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, str(save_weights_file))
    with pytest.raises(CheckpointError, match=f"other shapes than the model's, e.g. {first}"):
        load_weights(save_weights_file, same_keys)
    (tmp_path / "torn.safetensors").write_bytes((tmp_path / "w.safetensors").read_bytes()[:40])
    with pytest.raises(CheckpointError, match="damaged"):
        read_weights(tmp_path / "torn.safetensors")


def test_save_best_writes_weights_and_json(tmp_path):
    model = _model(0)
    save_best(tmp_path, model, {"epoch": 3, "top1": 0.75, "val": {"top1": 0.75}})
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 3
    assert set(read_weights(tmp_path / "best.safetensors")) == set(model.state_dict())
