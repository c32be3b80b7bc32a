"""Numeric guards: a finite but absurd input stops training with the sample's name instead of
writing inf into the saved BatchNorm statistics; NaN losses and NaN inputs are named too."""

from __future__ import annotations

from typing import Any, Dict

import pytest
import torch

from actionfusion.errors import NonFiniteError
from actionfusion.pipeline.numeric_guards import batch_sample_names, check_inputs, describe_samples
from actionfusion.pipeline.trainer import train
from trainer_standins import TinyClipDataset, tiny_config, tiny_datasets

pytestmark = pytest.mark.usefixtures("one_thread")


class _PoisonedClips(TinyClipDataset):
    """TinyClipDataset whose sample ``bad`` holds ``value`` at one joint coordinate."""

    def __init__(self, size: int, bad: int, value: float) -> None:
        super().__init__(size)
        self.bad, self.value = bad, value

    def __getitem__(self, index: int) -> Dict[str, Any]:
        item = super().__getitem__(index)
        if index == self.bad:
            item["skeleton"] = item["skeleton"].clone()
            item["skeleton"][0, 3, 7, 2] = self.value
        return item


def _train_with(poisoned: _PoisonedClips, tmp_path) -> None:
    cfg = tiny_config(epochs=1, model={"kwargs": {"use_bn": True, "aux_weight": 0.0}}, train={"amp": False})
    datasets = {**tiny_datasets(), "train": poisoned}
    train(cfg, tmp_path, progress=False, datasets=datasets)


def test_finite_but_huge_input_stops_on_the_batchnorm_statistics(tmp_path):
    """1e24 keeps the loss finite (BatchNorm divides it away) but overflows the running variance."""
    poisoned = _PoisonedClips(40, bad=13, value=1e24)
    with pytest.raises(NonFiniteError, match="BatchNorm running statistic") as info:
        _train_with(poisoned, tmp_path)
    assert poisoned.names[13] in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "best.safetensors").exists()


def test_nan_input_stops_on_the_loss_naming_the_sample(tmp_path):
    poisoned = _PoisonedClips(40, bad=22, value=float("nan"))
    with pytest.raises(NonFiniteError, match="non-finite loss") as info:
        _train_with(poisoned, tmp_path)
    assert poisoned.names[22] in str(info.value)


def test_the_same_run_without_poison_trains(tmp_path):
    _train_with(_PoisonedClips(40, bad=13, value=0.5), tmp_path)
    assert (tmp_path / "metrics.json").exists()


def test_check_inputs_names_only_the_bad_samples_of_a_multi_clip_batch():
    dataset = TinyClipDataset(6)
    batch = {"index": torch.tensor([4, 1, 5])}
    x = torch.zeros(3 * 2, 2, 8, 25, 3)  # 3 samples x 2 clips folded
    x[3, 0, 0, 0, 0] = float("inf")  # sample 1 (second row of the batch), clip 1
    loader = torch.utils.data.DataLoader(dataset)
    with pytest.raises(NonFiniteError) as info:
        check_inputs({"skeleton": x}, loader, batch, clips=2)
    assert dataset.names[1] in str(info.value)
    assert dataset.names[4] not in str(info.value) and dataset.names[5] not in str(info.value)
    check_inputs({"skeleton": torch.zeros(6, 2, 8, 25, 3)}, loader, batch, clips=2)  # finite: passes


def test_sample_lists_are_capped():
    names = [f"S{i:03d}" for i in range(20)]
    assert describe_samples(names).endswith("and 12 more")
    assert batch_sample_names(None, {"index": torch.tensor([3])}) == ["#3"]
