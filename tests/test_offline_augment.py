"""Offline augmentation (the leakage demonstration's pool): copies, manifest, determinism, and the leak itself."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.augment import Identity, Recipe
from ser_lightning.data import ManifestDataModule, SyntheticDataModule
from ser_lightning.data.offline import augment_corpus
from ser_lightning.data.offline import main as offline_main

from .conftest import CONFIGS


def rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open() as handle:
        return list(csv.DictReader(handle))


def digest(path: Path) -> str:
    return hashlib.sha1(sf.read(path, dtype="float32")[0].tobytes()).hexdigest()


@pytest.fixture(scope="module")
def pool(_private_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pool")
    args = ["--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"), "--data.init_args.root", str(_private_cache),
            "--out", str(out), "--copies", "3"]  # fmt: skip
    assert offline_main(args) == 0
    return out / "manifest.csv"


def test_every_recording_gets_distinct_copies_and_a_readable_manifest(pool: Path, _private_cache: Path) -> None:
    originals = SyntheticDataModule(root=str(_private_cache), size="tiny").records()
    table = rows(pool)
    assert len(table) == 4 * len(originals)
    by_source: dict[str, list[dict[str, str]]] = {}
    for row in table:
        by_source.setdefault(row["source_utt"], []).append(row)
    assert set(by_source) == {r.utt_id for r in originals}
    for source, copies in list(by_source.items())[:12]:
        assert sorted(int(r["copy"]) for r in copies) == [0, 1, 2, 3]
        hashes = {digest(pool.parent / r["path"]) for r in copies}
        assert len(hashes) == 4, f"{source}: a copy repeats the original or another copy"
        assert len({(r["label"], r["speaker"], r["session"]) for r in copies}) == 1
    data = ManifestDataModule(manifest=str(pool))
    assert len(data.records()) == len(table)


def test_copies_are_deterministic_and_seeded(tmp_path: Path, tiny_corpus: Path) -> None:
    records = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny").records()[:3]
    recipe = Recipe(name="emoaugnet_noise")
    first = augment_corpus(records, tmp_path / "a", recipe, copies=2, keep_original=False)
    augment_corpus(records, tmp_path / "b", recipe, copies=2, keep_original=False)
    augment_corpus(records, tmp_path / "c", recipe, copies=2, keep_original=False, seed=1)
    names = [r["path"] for r in rows(first)]
    assert len(names) == 6 and not any(name.endswith("aug00.wav") for name in names)
    for name in names:
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name)
        assert digest(tmp_path / "a" / name) != digest(tmp_path / "c" / name)
    with pytest.raises(ValueError, match="gave no new audio"):
        augment_corpus(records, tmp_path / "d", Identity(), copies=1)
    with pytest.raises(ValueError, match="copies must be"):
        augment_corpus(records, tmp_path / "e", recipe, copies=0, keep_original=False)


def test_the_random_split_of_the_pool_leaks_and_the_honest_split_does_not(pool: Path, _private_cache: Path) -> None:
    leaky = ManifestDataModule(manifest=str(pool), protocol="holdout", speaker_dependent=True)
    leaky.setup("fit")
    by_path = {str(pool.parent / row["path"]): row["source_utt"] for row in rows(pool)}
    train_sources = {by_path[r.path] for r in leaky.split.train}
    test_sources = {by_path[r.path] for r in leaky.split.test}
    shared = train_sources & test_sources
    assert len(shared) > 0.5 * len(test_sources)  # most test recordings were trained on
    assert leaky.describe()["speaker_independent"] is False  # and the run says so

    honest = ManifestDataModule(manifest=str(pool), protocol="holdout")
    honest.setup("fit")
    assert not {by_path[r.path] for r in honest.split.train} & {by_path[r.path] for r in honest.split.test}
    assert not {r.speaker for r in honest.split.train} & {r.speaker for r in honest.split.test}
    audio, rate = sf.read(str(pool.parent / rows(pool)[0]["path"]), dtype="float32")
    assert rate == 16000 and np.isfinite(audio).all()
