from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from ser_lightning.audio import read_av_audio
from ser_lightning.cli import main
from ser_lightning.data.enterface import EMOTIONS, ENTERFACEDataModule, parse_enterface
from ser_lightning.data.manifest import ParseReport, count_by
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ProtocolError

from .conftest import CONFIGS, REPO

REPLICA = REPO / "tests" / "data" / "enterface"
SUBJECTS = ["subject 1", "subject 11", "subject 2", "subject 3", "subject 6"]


def load_generator():
    spec = importlib.util.spec_from_file_location("enterface_replica", REPLICA / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_replica(tmp_path: Path) -> Path:
    root = tmp_path / "enterface"
    shutil.copytree(REPLICA, root, ignore=shutil.ignore_patterns("data.py", "__pycache__"))
    return root


def data(root: Path = REPLICA, **kwargs) -> ENTERFACEDataModule:
    return ENTERFACEDataModule(root=str(root), **kwargs)


def test_replica_counts_labels_speakers_and_irregularities() -> None:
    module = data(cache_manifest=False)
    assert module.class_names == list(EMOTIONS) and module.num_classes == 6
    records = module.records()
    assert len(records) == 31
    assert count_by(records, "label") == {"anger": 7, "disgust": 5, "fear": 5, "happiness": 5, "sadness": 5,
                                          "surprise": 4}  # fmt: skip
    assert count_by(records, "speaker") == {"subject 1": 7, "subject 11": 6, "subject 2": 6, "subject 3": 7,
                                            "subject 6": 5}  # fmt: skip
    assert {r.session for r in records} == {""}
    assert len({r.utt_id for r in records}) == 31
    by_id = {r.utt_id: r for r in records}
    # The folder is authoritative: subject 11's files are named s12_*, one of subject 6's s16_*.
    assert by_id["s11_an_1"].speaker == "subject 11" and by_id["s11_an_1"].extra["file_name"] == "s12_an_1.avi"
    assert by_id["s6_an_1"].extra["irregular"] == "subject_mismatch"
    assert by_id["s1_di_1"].label == "disgust" and by_id["s1_di_1"].extra["file_name"] == "s1_fe_1.avi"
    # No sentence folder: sentence from the (malformed) name; extra folder level; capitals and .AVI.
    assert by_id["s2_su_1"].sentence == "surprise_1" and by_id["s2_su_1"].extra["file_name"] == "s2_su_1avi.avi"
    assert by_id["s2_fe_1"].extra["irregular"] == "no_sentence_folder"
    assert by_id["s6_fe_1"].extra["irregular"] == "extra_folder_level"
    assert by_id["s6_ha_1"].label == "happiness" and by_id["s6_ha_1"].extra["file_name"] == "S6_HA_1.AVI"
    assert by_id["s3_an_1"].extra["file_name"] == "s_3_an_1.avi"
    assert by_id["s1_an_2"].sentence == "anger_2"
    assert all(r.duration == pytest.approx(0.25) and r.checksum for r in records)
    # Valid labelled audio whose sentence cannot be told (no sentence folder, unparseable name) is loaded with
    # an unknown sentence (it was skipped before).
    assert by_id["s3_an_clip"].sentence == "" and by_id["s3_an_clip"].label == "anger"
    assert by_id["s3_an_clip"].extra["irregular"] == "nonstandard_name,unknown_sentence"
    assert module.irregular == {"subject_mismatch": 7, "emotion_mismatch": 1, "nonstandard_name": 8,
                                "no_sentence_folder": 3, "extra_folder_level": 1, "capitalisation": 1,
                                "unknown_sentence": 1}  # fmt: skip
    skipped = {Path(s["path"]).name: s["reason"] for s in module.skipped}
    assert set(skipped) == {"notes.txt", "s6_an_2.avi"}  # Thumbs.db is ignored silently
    assert "not an .avi" in skipped["notes.txt"]
    assert "not inside an emotion folder" in skipped["s6_an_2.avi"]


def test_irregular_files_are_counted_in_describe_and_fail_when_strict(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    load_generator().write_avi(root / "subject 1" / "neutral" / "sentence 1" / "s1_ne_1.avi", seed=500)
    (root / "subject 2" / "anger" / "sentence 1" / "broken.avi").write_bytes(b"RIFF0000AVI junk")
    module = data(root, protocol="loso", fold=0)
    module.setup("fit")
    stamp = module.describe()
    reasons = {Path(f["path"]).name: f["reason"] for f in stamp["skipped"]["files"]}
    assert stamp["skipped"]["count"] == 4  # clip.avi is loaded now (unknown sentence)
    assert "not inside an emotion folder" in reasons["s1_ne_1.avi"]  # no neutral class in eNTERFACE
    assert "cannot decode" in reasons["broken.avi"]
    assert stamp["irregular"]["subject_mismatch"] == 7
    assert sum(stamp["sizes"].values()) == 31  # broken.avi: attributed by its folders, then unreadable
    with pytest.raises(AudioReadError, match="s1_ne_1.avi"):
        data(root, strict=True, cache_manifest=False).records()


def test_duplicate_slot_gets_a_distinct_utterance_id(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    load_generator().write_avi(root / "subject 1" / "anger" / "sentence 1" / "s1_an_1 (copy).avi", seed=501)
    module = data(root, cache_manifest=False)
    records = {r.utt_id: r for r in module.records()}
    names = {records["s1_an_1"].extra["file_name"], records["s1_an_1-2"].extra["file_name"]}
    assert names == {"s1_an_1.avi", "s1_an_1 (copy).avi"}
    assert module.irregular["duplicate_slot"] == 1


def test_emotion_selection_drops_and_counts() -> None:
    module = data(emotions=["sadness", "anger"], cache_manifest=False)
    assert module.class_names == ["sadness", "anger"]
    records = module.records()
    assert count_by(records, "label") == {"anger": 7, "sadness": 5}
    assert module.dropped == {"disgust": 5, "fear": 5, "happiness": 5, "surprise": 4}
    module.setup("fit")
    assert module.describe()["dropped_labels"] == module.dropped
    with pytest.raises(ValueError, match="unknown eNTERFACE emotion"):
        data(emotions=["neutral", "anger"])
    with pytest.raises(ValueError, match="at least two distinct"):
        data(emotions=["anger"])


@pytest.mark.parametrize(
    ("protocol", "folds", "extra"),
    [("loso", 5, {}), ("kfold", 5, {"num_folds": 5}), ("kfold", 3, {"num_folds": 3}), ("holdout", 1, {})],
)
def test_protocols_give_disjoint_speakers(protocol: str, folds: int, extra: dict) -> None:
    tested = set()
    for fold in range(folds):
        module = data(protocol=protocol, fold=fold, **extra)
        module.setup("fit")
        parts = {name: {r.speaker for r in part} for name, part in module.split.parts().items()}
        assert all(parts.values())
        assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
        assert parts["train"] | parts["val"] | parts["test"] == set(SUBJECTS)
        tested |= parts["test"]
    if protocol == "loso":
        assert tested == set(SUBJECTS)


def test_lsso_is_refused_without_sessions() -> None:
    with pytest.raises(ProtocolError, match="session"):
        data(protocol="lsso").setup("fit")


def test_missing_or_wrong_root_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match="does-not-exist.*subject N"):
        data(tmp_path / "does-not-exist").setup("fit")
    with pytest.raises(CorpusNotFoundError, match=r"needs `root`"):
        ENTERFACEDataModule().setup("fit")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusNotFoundError, match=rf"no `subject N` folder in {empty}.*sentence K"):
        data(empty).setup("fit")
    parent = tmp_path / "parent"
    shutil.copytree(REPLICA, parent / "enterface05")
    with pytest.raises(CorpusNotFoundError, match="did you mean .*enterface05"):
        data(parent).setup("fit")


def test_batches_decode_the_avi_audio_track() -> None:
    module = data(batch_size=4, segment_seconds=0.1)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["waveform"].shape == (4, 1600)  # 0.1 s crops at 16 kHz
    val = next(iter(module.val_dataloader()))
    assert val["waveform"].shape[1] == 4000  # whole 0.25 s utterances, 8 kHz -> 16 kHz
    assert set(val["label"].tolist()) <= set(range(6))


def test_replica_generator_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = load_generator()
    monkeypatch.setattr(generator, "HERE", tmp_path)
    generator.main()
    fresh = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(str(p.relative_to(REPLICA)) for p in REPLICA.rglob("*") if p.is_file()
                       and p.name != "data.py" and "__pycache__" not in p.parts)  # fmt: skip
    assert fresh == committed
    for rel in fresh:
        if rel.lower().endswith(".avi"):
            assert np.array_equal(read_av_audio(str(tmp_path / rel))[0], read_av_audio(str(REPLICA / rel))[0]), rel


def test_cli_fast_dev_run(tmp_path: Path) -> None:
    config = str(CONFIGS / "data" / "enterface.yaml")
    cli = main(["fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--data", config,
                "--data.init_args.root", str(REPLICA), "--trainer.fast_dev_run", "true",
                "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path),
                "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2"])  # fmt: skip
    assert cli.model.class_names == list(EMOTIONS)
    assert cli.trainer.state.finished


def test_parse_enterface_reads_the_layout_without_a_datamodule() -> None:
    report = ParseReport()
    records = parse_enterface(REPLICA, report=report)
    assert len(records) == 31 and {r.utt_id: r for r in records}["s11_an_1"].speaker == "subject 11"
    assert report.irregular == {"subject_mismatch": 7, "emotion_mismatch": 1, "nonstandard_name": 8,
                                "no_sentence_folder": 3, "extra_folder_level": 1, "capitalisation": 1,
                                "unknown_sentence": 1}  # fmt: skip
    assert {Path(s["path"]).name for s in report.skipped} >= {"notes.txt", "s6_an_2.avi"}
    two = ParseReport()
    assert count_by(parse_enterface(REPLICA, emotions=["sadness", "anger"], report=two), "label") == {
        "anger": 7, "sadness": 5}  # fmt: skip
    assert two.dropped == {"disgust": 5, "fear": 5, "happiness": 5, "surprise": 4}


def test_subject_6_files_without_a_sentence_are_loaded_with_an_unknown_sentence(tmp_path: Path) -> None:
    """The release's subject 6: files directly in the emotion folders, names that do not tell the sentence."""
    root = copy_replica(tmp_path)
    for n, name in enumerate(["sadness take 1.avi", "sadness take 2.avi"]):
        load_generator().write_avi(root / "subject 6" / "sadness" / name, seed=600 + n)
    module = data(root, protocol="loso", fold=4)  # test on subject 6
    module.setup("fit")
    stamp = module.describe()
    unknown = [r for r in module.split.test if not r.sentence]
    assert sorted(r.utt_id for r in unknown) == ["s6_sa_sadness-take-1", "s6_sa_sadness-take-2"]
    assert all(r.label == "sadness" and r.speaker == "subject 6" for r in unknown)
    assert stamp["test_speakers"] == ["subject 6"]
    assert stamp["unknown_sentence"] == 3  # these two and subject 3's clip.avi
    assert stamp["irregular"]["unknown_sentence"] == 3
    assert not any(Path(f["path"]).name.startswith("sadness take") for f in stamp["skipped"]["files"])
