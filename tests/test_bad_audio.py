"""A bad file never kills a run: the zoo of broken and unusual files (tests/data/zoo.py) through fit, test, predict."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from ser_lightning.cli import main
from ser_lightning.data import ManifestDataModule
from ser_lightning.data.dataset import UtteranceDataset, collate_utterances
from ser_lightning.data.manifest import Utterance
from ser_lightning.errors import AudioReadError
from ser_lightning.models import DenseHighway

from .conftest import CONFIGS
from .data.zoo import SKIPPED, ZOO, write_zoo

MAIN = str(CONFIGS / "dense_highway.yaml")
SMALL = ["--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2"]
CLASSES = ["neutral", "happy", "angry", "sad"]
REASON_WORDS = {"unreadable": "cannot read audio", "empty": "empty", "non_finite": "NaN or infinite",
                "too_short": "too short", "silent": "digital silence"}  # fmt: skip


def tiny_rows(tiny_corpus: Path, per_speaker: int = 4) -> list[dict[str, str]]:
    """A few utterances per speaker of the tiny corpus (one per class), with absolute paths."""
    with (tiny_corpus / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    kept, seen = [], Counter()
    for r in rows:
        taken = {k["label"] for k in kept if k["speaker"] == r["speaker"]}
        if seen[r["speaker"]] < per_speaker and r["label"] not in taken:
            seen[r["speaker"]] += 1
            kept.append({"path": str(tiny_corpus / r["path"]), "label": r["label"], "speaker": r["speaker"],
                         "session": r["session"]})  # fmt: skip
    return kept


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker", "session"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def zoo_manifest(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, Path]:
    """The zoo, and a manifest that deals its files among the tiny corpus' speakers (so into every split)."""
    tmp = tmp_path_factory.mktemp("zoo")
    files = write_zoo(tmp / "zoo")
    rows = tiny_rows(tiny_corpus)
    speakers = sorted({r["speaker"] for r in rows})
    session = {r["speaker"]: r["session"] for r in rows}
    for i, path in enumerate(files.values()):
        speaker = speakers[i % len(speakers)]
        rows.append({"path": str(path), "label": CLASSES[i % 4], "speaker": speaker, "session": session[speaker]})
    return {"tmp": tmp, "zoo": tmp / "zoo", "manifest": write_manifest(tmp / "manifest.csv", rows)}


def test_the_zoo_has_every_kind_and_setup_sorts_them(zoo_manifest: dict[str, Path]) -> None:
    assert len(ZOO) >= 20
    data = ManifestDataModule(manifest=str(zoo_manifest["manifest"]), protocol="loso", fold=0, cache_manifest=False)
    data.setup("fit")
    stamp = data.describe()
    skipped = {Path(f["path"]).name: f for f in stamp["skipped"]["files"]}
    assert {name: f["kind"] for name, f in skipped.items()} == SKIPPED
    for name, item in skipped.items():
        assert REASON_WORDS[item["kind"]] in item["reason"], (name, item)
    assert stamp["skipped"]["count"] == len(SKIPPED) and stamp["skipped_at_read"] == 0
    assert stamp["skipped_by_kind"] == dict(sorted(Counter(SKIPPED.values()).items()))
    assert [Path(f["path"]).name for f in stamp["quiet"]["files"]] == ["near_silence.wav"]
    # every loadable zoo file is in the split, and the split puts some into train, validation and test
    parts = {name: {Path(r.path).name for r in part} for name, part in data.split.parts().items()}
    loadable = {n for n, kind in ZOO.items() if kind in ("loaded", "quiet")}
    assert set().union(*parts.values()) >= loadable
    assert all(parts[s] & loadable for s in ("train", "val", "test")), parts
    # and each one decodes as mono float32 at 16 kHz, with the duration the setup found
    records = {Path(r.path).name: r for part in data.split.parts().values() for r in part}
    for name in loadable:
        dataset = UtteranceDataset([records[name]], CLASSES, 16000)
        item = dataset[0]
        assert "failed" not in item, (name, item)
        assert item["waveform"].dtype.is_floating_point and item["waveform"].ndim == 1
        assert abs(item["length"] / 16000 - records[name].duration) < 0.01, name
    assert records["long_60s.wav"].duration == pytest.approx(60.0)
    assert records["stereo_44k.wav"].duration == pytest.approx(0.5)


def test_strict_fails_naming_the_file(zoo_manifest: dict[str, Path]) -> None:
    data = ManifestDataModule(manifest=str(zoo_manifest["manifest"]), protocol="loso", fold=0, strict=True,
                              cache_manifest=False)  # fmt: skip
    first = next(name for name in ZOO if name in SKIPPED)
    with pytest.raises(AudioReadError, match=rf"{first}.*strict=True"):
        data.setup("fit")
    bad = Utterance(str(zoo_manifest["zoo"] / "nan_float.wav"), "happy", "x", utt_id="nan_float")
    with pytest.raises(AudioReadError, match="nan_float.wav: the audio contains NaN"):
        UtteranceDataset([bad], CLASSES, 16000, strict=True)[0]


def test_collate_drops_and_reports_failed_items(zoo_manifest: dict[str, Path]) -> None:
    zoo = zoo_manifest["zoo"]
    records = [Utterance(str(zoo / n), "happy", "x", utt_id=Path(n).stem) for n in ("pcm24.wav", "text.wav")]
    dataset = UtteranceDataset(records, CLASSES, 16000, min_seconds=0.1)
    batch = collate_utterances([dataset[0], dataset[1]])
    assert batch["waveform"].shape[0] == 1 and batch["utt_id"] == ["pcm24"]
    (failed,) = batch["failed"]
    assert failed["utt_id"] == "text" and failed["kind"] == "unreadable" and "cannot read audio" in failed["reason"]
    empty = collate_utterances([dataset[1]])
    assert empty["waveform"].shape == (0, 0) and empty["utt_id"] == [] and len(empty["failed"]) == 1


@pytest.fixture(scope="module")
def zoo_fit(zoo_manifest: dict[str, Path]) -> dict[str, object]:
    """fit (then test) through the CLI on the manifest with the zoo in every split."""
    tmp = zoo_manifest["tmp"]
    config = tmp / "data.yaml"
    config.write_text(yaml.safe_dump({"class_path": "ser_lightning.data.ManifestDataModule", "init_args": {
        "manifest": str(zoo_manifest["manifest"]), "protocol": "loso", "fold": 0, "batch_size": 4}}))  # fmt: skip
    args = ["--config", MAIN, "--data", str(config), "--trainer.logger.init_args.save_dir", str(tmp / "runs"),
            "--trainer.enable_progress_bar", "false", *SMALL]  # fmt: skip
    cli = main(["fit", *args, "--trainer.max_epochs", "1"])
    return {"cli": cli, "args": args, "best": cli.trainer.checkpoint_callback.best_model_path}


def test_fit_and_test_count_every_skipped_kind(zoo_fit: dict[str, object]) -> None:
    cli = zoo_fit["cli"]
    assert cli.trainer.state.finished
    results = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    skipped = {Path(f["path"]).name: f["kind"] for f in results["skipped"]["files"]}
    assert skipped == SKIPPED
    assert results["skipped"]["count"] == len(SKIPPED)
    assert results["quiet"]["count"] == 1
    assert results["seeds"] == {"seed_everything": 0, "data_seed": 0}
    assert results["num_test_utterances"] == results["sizes"]["test"]


def test_predict_on_the_zoo_folder_writes_an_error_row_per_bad_file(zoo_fit: dict[str, object],
                                                                    zoo_manifest: dict[str, Path]) -> None:
    cli = main(["predict", *zoo_fit["args"], "--ckpt_path", zoo_fit["best"],
                "--data.init_args.predict_paths", f"[{zoo_manifest['zoo']}]"])  # fmt: skip
    with (Path(cli.trainer.log_dir) / "predictions.csv").open() as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    assert set(rows) == set(ZOO)
    for name, kind in ZOO.items():
        row = rows[name]
        if kind in SKIPPED.values() and name in SKIPPED:
            assert row["status"] == "error" and REASON_WORDS[kind] in row["error"], row
            assert row["predicted"] == "" and all(row[f"p_{c}"] == "" for c in CLASSES)
        else:
            assert row["status"] == "ok" and row["error"] == "" and row["predicted"] in CLASSES, row
            assert abs(sum(float(row[f"p_{c}"]) for c in CLASSES) - 1) < 1e-4


def test_predict_strict_fails_naming_the_file(zoo_fit: dict[str, object], zoo_manifest: dict[str, Path]) -> None:
    with pytest.raises(AudioReadError, match=r"zero_bytes.wav"):
        main(["predict", *zoo_fit["args"], "--ckpt_path", zoo_fit["best"], "--data.init_args.strict", "true",
              "--data.init_args.predict_paths", f"[{zoo_manifest['zoo'] / 'zero_bytes.wav'}]"])  # fmt: skip


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_file_broken_after_setup_is_a_counted_skip(tmp_path: Path, tiny_corpus: Path, num_workers: int) -> None:
    rows = tiny_rows(tiny_corpus, per_speaker=2)
    for r in rows:  # private copies, so that breaking one does not touch the shared corpus
        copy = tmp_path / "wav" / Path(r["path"]).name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(Path(r["path"]).read_bytes())
        r["path"] = str(copy)
    data = ManifestDataModule(manifest=str(write_manifest(tmp_path / "m.csv", rows)), protocol="loso", fold=0,
                              batch_size=2, num_workers=num_workers, cache_manifest=False)  # fmt: skip
    data.setup("fit")
    broken = [data.split.train[0].path, data.split.test[0].path]
    for path in broken:
        Path(path).write_bytes(b"garbage, written after setup")
    sf_empty = data.split.val[0].path
    Path(sf_empty).write_bytes(Path(sf_empty).read_bytes()[:44])  # a header with no samples
    model = DenseHighway(num_classes=4, class_names=CLASSES, sample_rate=data.sample_rate, growth_rate=4,
                         block_layers=2)
    trainer = Trainer(max_epochs=1, logger=TensorBoardLogger(tmp_path / "runs"), enable_progress_bar=False,
                      enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data)
    results = json.loads((Path(trainer.log_dir) / "results.json").read_text())
    at_read = {f["path"]: f for f in results["skipped"]["files"] if f.get("stage") == "read"}
    assert set(at_read) == {*broken, sf_empty}
    assert results["skipped_at_read"] == 3 and results["skipped"]["count"] == 3
    assert {f["kind"] for f in at_read.values()} == {"unreadable", "empty"}
    assert results["num_test_utterances"] == len(data.split.test) - 1
    assert np.isfinite(results["test_ua"])
