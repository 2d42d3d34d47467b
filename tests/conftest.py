"""Shared fixtures: every test writes into temporary folders, never into a user's cache."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Points SER_LIGHTNING_CACHE at a temporary folder for the whole session."""
    cache = tmp_path_factory.mktemp("ser_cache")
    old = os.environ.get("SER_LIGHTNING_CACHE")
    os.environ["SER_LIGHTNING_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("SER_LIGHTNING_CACHE", None)
    else:
        os.environ["SER_LIGHTNING_CACHE"] = old


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs every test in its own temporary folder, so nothing (checkpoints, logs) lands in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_corpus(_private_cache: Path) -> Path:
    """The tiny synthetic corpus, generated once per session."""
    from ser_lightning.synth import ensure_corpus

    return ensure_corpus(size="tiny", seed=0, cache_dir=_private_cache)


@pytest.fixture(scope="session")
def odd_manifest(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus' manifest minus one utterance of the test speaker, so the test split has an odd size
    that two processes cannot share evenly (a padding DistributedSampler would count one utterance twice)."""
    with (tiny_corpus / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    test_speaker = sorted({r["speaker"] for r in rows})[0]
    drop = next(i for i, r in enumerate(rows) if r["speaker"] == test_speaker)
    rows.pop(drop)
    for r in rows:
        r["path"] = str(tiny_corpus / r["path"])
    out = tmp_path_factory.mktemp("odd") / "manifest.csv"
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out
