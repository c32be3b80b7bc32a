"""Session data of the adversarial suite: a tiny synthetic NTU root and its skeleton store, built
once (about 15 s), never modified by a case (the harness checks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .harness import TALLY, Env, run_cli


@pytest.fixture(scope="session")
def adversarial_data(tmp_path_factory) -> Env:
    root = tmp_path_factory.mktemp("adversarial_data")
    for argv in (["synth", "raw", "--scale", "tiny", "--quiet", "--workers", "1"],
                 ["prepare", "raw", "--out", "store", "--modalities", "skeleton", "--quiet", "--workers", "1"]):
        result = run_cli(argv, root)
        assert result.status == 0, result.stderr[-2000:]
    return Env(case=root, raw=root / "raw", store=root / "store")


@pytest.fixture
def env(adversarial_data: Env, tmp_path: Path) -> Env:
    return Env(case=tmp_path, raw=adversarial_data.raw, store=adversarial_data.store)


@pytest.fixture(scope="session")
def trained_run(adversarial_data: Env) -> Path:
    """A one-epoch ST-GCN run on the session store (its work dir: config.yaml, best.safetensors)."""
    repo = Path(__file__).resolve().parents[2]
    config = adversarial_data.case / "stgcn_tiny.yaml"
    config.write_text(f"_base_: [{repo / 'configs' / 'synthetic' / 'stgcn.yaml'}]\n"
                      f"data: {{store: {adversarial_data.store}, num_workers: 0, batch_size: 8}}\n"
                      "schedule: {epochs: 1, warmup_epochs: 0}\ntrain: {amp: false}\n")
    result = run_cli(["train", str(config), "--work-dir", "run"], adversarial_data.case)
    assert result.status == 0, result.stderr[-2000:]
    return adversarial_data.case / "run"


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The suite's table: cases that passed, by outcome (a traceback or a silent wrong result fails its case)."""
    if TALLY:
        total = sum(TALLY.values())
        parts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(TALLY.items()))
        terminalreporter.write_line(f"adversarial suite: {total} cases held: {parts}; failed cases are listed above")
