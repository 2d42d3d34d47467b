"""RAVDESSDataModule on the committed replica (tests/data/ravdess, written by its data.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ser_lightning.cli import main
from ser_lightning.data.manifest import ParseReport, count_by
from ser_lightning.data.ravdess import RAVDESSDataModule, parse_ravdess
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ManifestError

from .conftest import CONFIGS, REPO

REPLICA = REPO / "tests" / "data" / "ravdess"
SPEECH = REPLICA / "Audio_Speech_Actors_01-24"
SONG = REPLICA / "Audio_Song_Actors_01-24"
EIGHT = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
ACTORS = [f"Actor_{a:02d}" for a in range(1, 6)]


def data(root: Path = REPLICA, **kwargs: object) -> RAVDESSDataModule:
    return RAVDESSDataModule(root=str(root), **kwargs)


def copy_speech(tmp_path: Path) -> Path:
    root = tmp_path / "ravdess"
    shutil.copytree(SPEECH, root / SPEECH.name)
    return root


def test_counts_label_sets_and_metadata() -> None:
    module = data()
    assert module.class_names == EIGHT and module.num_classes == 8
    records = module.records()
    assert len(records) == 40
    assert count_by(records, "label") == {name: 5 for name in sorted(EIGHT)}
    assert count_by(records, "speaker") == {actor: 8 for actor in ACTORS}
    assert {r.session for r in records} == {""}
    assert {r.sentence for r in records} == {"01", "02"}
    assert all(Path(r.path).is_absolute() and r.corpus == "ravdess" for r in records)
    first = next(r for r in records if r.utt_id == "03-01-02-02-01-01-01")
    assert first.label == "calm" and first.speaker == "Actor_01" and first.sentence == "01"
    assert first.extra == {"gender": "male", "intensity": "strong", "statement": "01", "repetition": "01"}
    assert {r.extra["gender"] for r in records if r.speaker == "Actor_04"} == {"female"}
    assert {r.extra["intensity"] for r in records if r.label == "neutral"} == {"normal"}
    assert all(0.2 < r.duration < 0.3 and r.checksum for r in records)
    assert module.dropped == {} and module.ignored == {}

    seven = data(label_set="7class")
    assert seven.class_names == [c for c in EIGHT if c != "calm"]
    assert "02" not in seven.label_map and seven.label_map["08"] == "surprised"
    records = seven.records()
    assert len(records) == 35 and "calm" not in {r.label for r in records}
    assert seven.dropped == {"calm": 5}
    assert data(label_set="7class").records() == records  # cache hit ...
    cached = data(label_set="7class")
    cached.records()
    assert cached.dropped == {"calm": 5}  # ... still counts what it drops
    with pytest.raises(ValueError, match="label_set"):
        RAVDESSDataModule(label_set="6class")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("protocol", "folds", "kwargs"),
    [("loso", 5, {}), ("kfold", 5, {}), ("holdout", 1, {"holdout_fractions": (0.6, 0.15, 0.25)})],
)
def test_every_protocol_is_speaker_independent(protocol: str, folds: int, kwargs: dict[str, object]) -> None:
    seen_test: set[str] = set()
    for fold in range(folds):
        module = data(protocol=protocol, fold=fold, **kwargs)
        module.setup("fit")
        parts = {name: {r.speaker for r in part} for name, part in module.split.parts().items()}
        assert all(parts.values())
        assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
        stamp = module.describe()
        assert stamp["speaker_independent"] is True and stamp["shared_sentences"] is True
        assert sum(stamp["sizes"].values()) == 40 and stamp["skipped"]["count"] == 0
        seen_test |= parts["test"]
    if protocol != "holdout":
        assert seen_test == set(ACTORS)
    loso = data(protocol="loso", fold=2)
    loso.setup("fit")
    assert loso.split.stamp["test_speakers"] == ["Actor_03"] and loso.split.stamp["val_speakers"] == ["Actor_04"]


def test_root_may_be_the_speech_folder_or_the_unpacked_actor_folders(tmp_path: Path) -> None:
    reference = sorted(r.utt_id for r in data().records())
    assert sorted(r.utt_id for r in data(SPEECH).records()) == reference
    # Every zip unpacked into one folder: the song zip and a video zip merge into the same Actor_XX folders.
    merged = tmp_path / "unzipped"
    shutil.copytree(SPEECH, merged)
    shutil.copytree(SONG, merged, dirs_exist_ok=True)
    (merged / "Actor_01" / "01-01-03-01-02-01-01.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    (merged / "Actor_01" / "02-01-03-01-02-01-01.mp4").write_bytes(b"\0\0\0\x18ftypmp41")
    (merged / "Actor_01" / ".DS_Store").write_bytes(b"\0")
    module = data(merged)
    assert sorted(r.utt_id for r in module.records()) == reference
    assert module.ignored == {"song": 2, "video": 2}
    module.setup("fit")
    assert module.describe()["ignored_files"] == {"song": 2, "video": 2}
    # Kaggle's copy: the Actor_XX folders next to a lower-case copy of the speech folder (read once, not twice).
    kaggle = tmp_path / "kaggle"
    shutil.copytree(SPEECH, kaggle)
    shutil.copytree(SPEECH, kaggle / "audio_speech_actors_01-24")
    assert sorted(r.utt_id for r in data(kaggle).records()) == reference


def test_missing_or_wrong_root_names_the_path_and_the_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match="needs `root`"):
        RAVDESSDataModule().setup("fit")
    with pytest.raises(CorpusNotFoundError, match=r"nowhere.*Audio_Speech_Actors_01-24"):
        data(tmp_path / "nowhere").setup("fit")
    (tmp_path / "Actors").mkdir()
    with pytest.raises(CorpusNotFoundError, match=r"Actors: no RAVDESS speech found.*Actor_01"):
        data(tmp_path / "Actors").setup("fit")
    only_song = tmp_path / "song"
    shutil.copytree(SONG, only_song)
    with pytest.raises(CorpusNotFoundError, match=r"no audio-only speech file.*'song': 2"):
        data(only_song).setup("fit")


def test_unknown_emotion_code_names_the_file(tmp_path: Path) -> None:
    root = copy_speech(tmp_path)
    shutil.copy(
        SPEECH / "Actor_02" / "03-01-03-02-01-01-02.wav", root / SPEECH.name / "Actor_02" / "03-01-09-02-01-01-02.wav"
    )
    with pytest.raises(ManifestError, match=r"Actor_02/03-01-09-02-01-01-02.wav: unknown emotion code '09'"):
        data(root).setup("fit")


def test_irregular_files_are_skipped_named_and_counted(tmp_path: Path) -> None:
    root = copy_speech(tmp_path)
    actor_03 = root / SPEECH.name / "Actor_03"
    shutil.copy(SPEECH / "Actor_04" / "03-01-05-02-01-02-04.wav", actor_03 / "03-01-05-02-01-02-04.wav")
    shutil.copy(SPEECH / "Actor_03" / "03-01-05-01-02-02-03.wav", actor_03 / "03-01-05-01-02-02-03 (1).wav")
    shutil.copy(SPEECH / "Actor_03" / "03-01-06-02-01-02-03.wav", actor_03 / "03-01-06-03-01-02-03.wav")
    (actor_03 / "03-01-04-02-01-01-03.wav").write_bytes(b"")  # an empty download: the base's probe skips it
    module = data(root, protocol="loso", fold=0)
    module.setup("fit")
    skipped = module.describe()["skipped"]
    reasons = {Path(f["path"]).name: f["reason"] for f in skipped["files"]}
    assert skipped["count"] == 4, reasons
    assert "disagrees with its folder Actor_03" in reasons["03-01-05-02-01-02-04.wav"]
    assert "does not follow" in reasons["03-01-05-01-02-02-03 (1).wav"]
    assert "intensity code 03" in reasons["03-01-06-03-01-02-03.wav"]
    assert "cannot read audio" in reasons["03-01-04-02-01-01-03.wav"]
    assert sum(module.describe()["sizes"].values()) == 39
    with pytest.raises(AudioReadError, match=r"03-01-05-01-02-02-03 \(1\).wav: the name does not follow"):
        data(root, strict=True, cache_manifest=False).setup("fit")


def test_cli_fit_fast_dev_run(tmp_path: Path) -> None:
    cli = main([
        "fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--data", str(CONFIGS / "data" / "ravdess.yaml"),
        "--data.init_args.root", str(REPLICA), "--trainer.fast_dev_run", "true",
        "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path),
        "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2",
    ])  # fmt: skip
    assert cli.trainer.state.finished
    assert cli.model.class_names == EIGHT
    assert cli.datamodule.split.stamp["protocol"] == "holdout"


def test_parse_ravdess_reads_the_layout_without_a_datamodule() -> None:
    records = parse_ravdess(REPLICA)
    assert len(records) == 40 and count_by(records, "speaker") == {actor: 8 for actor in ACTORS}
    assert all(not r.checksum and r.duration == 0 for r in records)  # probing and hashing are the DataModule's
    report = ParseReport()
    seven = parse_ravdess(REPLICA, label_set="7class", report=report)
    assert len(seven) == 35 and report.dropped == {"calm": 5} and report.ignored == {} and report.skipped == []
