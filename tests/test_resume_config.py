"""Resume is safe: a changed config is refused (listing the keys) or, when allowed, recorded beside
the original, which is never overwritten; result-neutral keys may change."""

from __future__ import annotations

import pytest
import yaml

from actionfusion.pipeline.resume_config import (ResumeConfigError, changed_keys, check_finished_run,
                                                 record_config)
from actionfusion.pipeline.trainer import train
from trainer_standins import tiny_config, tiny_datasets

pytestmark = pytest.mark.usefixtures("one_thread")


def test_changed_keys_lists_nested_differences_and_skips_neutral_ones():
    old = {"optim": {"lr": 0.1, "name": "sgd"}, "data": {"store": "a", "num_workers": 2}, "seed": 0}
    new = {"optim": {"lr": 0.2, "name": "sgd"}, "data": {"store": "b", "num_workers": 8}, "extra": 1, "seed": 0}
    assert changed_keys(old, new) == ["data.store", "optim.lr"]  # "extra": an option added later
    assert changed_keys(new, old) == ["data.store", "extra", "optim.lr"]
    assert changed_keys(old, old) == []


def test_record_config_refuses_then_records_both(tmp_path):
    record_config(tmp_path, {"optim": {"lr": 0.1}}, resuming=False, allow_change=False)
    original = (tmp_path / "config.yaml").read_text()
    with pytest.raises(ResumeConfigError, match="optim.lr"):
        record_config(tmp_path, {"optim": {"lr": 0.2}}, resuming=True, allow_change=False)
    record_config(tmp_path, {"optim": {"lr": 0.2}}, resuming=True, allow_change=True)
    record_config(tmp_path, {"optim": {"lr": 0.3}}, resuming=True, allow_change=True)
    assert (tmp_path / "config.yaml").read_text() == original
    assert yaml.safe_load((tmp_path / "config.resume_1.yaml").read_text()) == {"optim": {"lr": 0.2}}
    assert yaml.safe_load((tmp_path / "config.resume_2.yaml").read_text()) == {"optim": {"lr": 0.3}}
    with pytest.raises(ResumeConfigError, match="another --work-dir"):
        check_finished_run(tmp_path, {"optim": {"lr": 0.2}})
    check_finished_run(tmp_path, {"optim": {"lr": 0.1}})


def test_train_resume_with_another_learning_rate_is_refused(tmp_path):
    train(tiny_config(epochs=1, train={"amp": False}), tmp_path, progress=False, datasets=tiny_datasets())
    original = (tmp_path / "config.yaml").read_text()
    changed = tiny_config(epochs=2, train={"amp": False}, optim={"lr": 0.5})
    with pytest.raises(ResumeConfigError, match="optim.lr, schedule.epochs"):
        train(changed, tmp_path, resume=True, progress=False, datasets=tiny_datasets())
    assert (tmp_path / "config.yaml").read_text() == original
    # More loader workers change nothing: the resume goes on.
    same = tiny_config(epochs=1, train={"amp": False}, data={"num_workers": 0, "batch_size": 8})
    train(same, tmp_path, resume=True, progress=False, datasets=tiny_datasets())
    train(changed, tmp_path, resume=True, progress=False, datasets=tiny_datasets(), allow_config_change=True)
    assert (tmp_path / "config.yaml").read_text() == original
    assert "lr: 0.5" in (tmp_path / "config.resume_1.yaml").read_text()
