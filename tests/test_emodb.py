"""EMODBDataModule on the committed replica (tests/data/emodb, written by its data.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ser_lightning.cli import main
from ser_lightning.data.emodb import EMODBDataModule, parse_emodb
from ser_lightning.data.manifest import ParseReport, count_by
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ManifestError

from .conftest import CONFIGS, REPO

REPLICA = REPO / "tests" / "data" / "emodb"
CLASSES = ["angry", "bored", "disgust", "fearful", "happy", "sad", "neutral"]
SPEAKERS = ["03", "08", "10", "13", "16"]


def data(root: Path = REPLICA, **kwargs: object) -> EMODBDataModule:
    return EMODBDataModule(root=str(root), **kwargs)


def test_counts_label_map_and_metadata() -> None:
    module = data()
    assert module.class_names == CLASSES and module.num_classes == 7
    assert module.label_map == {"W": "angry", "L": "bored", "E": "disgust", "A": "fearful", "F": "happy",
                                "T": "sad", "N": "neutral"}  # fmt: skip
    records = module.records()
    assert len(records) == 36
    assert count_by(records, "label") == {**{c: 5 for c in CLASSES}, "angry": 6}
    assert count_by(records, "speaker") == {"03": 8, "08": 7, "10": 7, "13": 7, "16": 7}
    assert {r.session for r in records} == {""}
    take = {r.utt_id: r for r in records}["03a01Wb"]
    assert take.label == "angry" and take.speaker == "03" and take.sentence == "a01"
    assert take.extra == {"gender": "male", "version": "b"}
    assert {r.extra["gender"] for r in records if r.speaker in ("08", "13", "16")} == {"female"}
    assert all(Path(r.path).is_absolute() and r.corpus == "emodb" and r.checksum for r in records)
    assert sorted(r.utt_id for r in data(REPLICA / "wav").records()) == sorted(r.utt_id for r in records)


@pytest.mark.parametrize(("protocol", "folds"), [("loso", 5), ("kfold", 5), ("holdout", 1)])
def test_every_protocol_is_speaker_independent(protocol: str, folds: int) -> None:
    tested: set[str] = set()
    for fold in range(folds):
        module = data(protocol=protocol, fold=fold)
        module.setup("fit")
        parts = {name: {r.speaker for r in part} for name, part in module.split.parts().items()}
        assert all(parts.values())
        assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
        stamp = module.describe()
        assert stamp["speaker_independent"] is True and sum(stamp["sizes"].values()) == 36
        tested |= parts["test"]
    if protocol != "holdout":
        assert sorted(tested) == SPEAKERS
    loso = data(fold=1)
    loso.setup("fit")
    assert loso.split.stamp["test_speakers"] == ["08"] and loso.split.stamp["val_speakers"] == ["10"]


def test_missing_or_wrong_root_names_the_path_and_the_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match="needs `root`"):
        EMODBDataModule().setup("fit")
    with pytest.raises(CorpusNotFoundError, match=r"nowhere.*wav/"):
        data(tmp_path / "nowhere").setup("fit")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "speech.wav").write_bytes(b"")
    with pytest.raises(CorpusNotFoundError, match=r"other: no EMO-DB wav/ folder found.*03a01Fa.wav"):
        data(tmp_path / "other").setup("fit")


def test_unknown_emotion_letter_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "emodb"
    shutil.copytree(REPLICA / "wav", root / "wav")
    shutil.copy(root / "wav" / "03a01Wa.wav", root / "wav" / "03a02Xa.wav")
    with pytest.raises(ManifestError, match=r"wav/03a02Xa.wav: unknown emotion letter 'X'"):
        data(root).setup("fit")


def test_irregular_files_are_skipped_named_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "emodb"
    shutil.copytree(REPLICA / "wav", root / "wav")
    wav = root / "wav"
    shutil.copy(wav / "03a01Wa.wav", wav / "03a01Wa (1).wav")  # a browser's second download
    shutil.copy(wav / "08a02Wa.wav", wav / "04a02Wa.wav")  # no speaker 04 in EMO-DB
    shutil.copy(wav / "10a04Wa.wav", wav / "10a03Wa.wav")  # no text a03
    (wav / "13a01Wa.wav").write_bytes(b"")  # empty: the base's probe skips it
    module = data(root)
    module.setup("fit")
    skipped = module.describe()["skipped"]
    reasons = {Path(f["path"]).name: f["reason"] for f in skipped["files"]}
    assert skipped["count"] == 4, reasons
    assert "does not follow" in reasons["03a01Wa (1).wav"]
    assert "speaker 04" in reasons["04a02Wa.wav"] and "text code a03" in reasons["10a03Wa.wav"]
    assert "cannot read audio" in reasons["13a01Wa.wav"]
    assert sum(module.describe()["sizes"].values()) == 36
    with pytest.raises(AudioReadError, match=r"03a01Wa \(1\).wav: the name does not follow"):
        data(root, strict=True, cache_manifest=False).setup("fit")


def test_cli_fit_fast_dev_run(tmp_path: Path) -> None:
    cli = main([
        "fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--data", str(CONFIGS / "data" / "emodb.yaml"),
        "--data.init_args.root", str(REPLICA), "--trainer.fast_dev_run", "true",
        "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path),
        "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2",
    ])  # fmt: skip
    assert cli.trainer.state.finished
    assert cli.model.class_names == CLASSES
    assert cli.datamodule.split.stamp["protocol"] == "loso"


def test_parse_emodb_reads_the_layout_without_a_datamodule(tmp_path: Path) -> None:
    records = parse_emodb(REPLICA)
    assert len(records) == 36 and count_by(records, "speaker") == {"03": 8, "08": 7, "10": 7, "13": 7, "16": 7}
    assert [r.utt_id for r in parse_emodb(REPLICA / "wav")] == [r.utt_id for r in records]
    assert all(not r.checksum and r.corpus == "emodb" for r in records)  # probing and hashing are the DataModule's
    wav = tmp_path / "wav"
    shutil.copytree(REPLICA / "wav", wav)
    shutil.copy(wav / "08a02Wa.wav", wav / "04a02Wa.wav")
    report = ParseReport()
    assert len(parse_emodb(tmp_path, report=report)) == 36
    assert [(Path(s["path"]).name, s["reason"][:10]) for s in report.skipped] == [("04a02Wa.wav", "speaker 04")]
