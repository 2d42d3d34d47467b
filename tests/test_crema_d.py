"""CREMADDataModule on the committed replica (tests/data/crema_d, written by its data.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ser_lightning.cli import main
from ser_lightning.data.crema_d import CREMADDataModule, parse_crema_d
from ser_lightning.data.manifest import ParseReport, count_by
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ManifestError

from .conftest import CONFIGS, REPO

REPLICA = REPO / "tests" / "data" / "crema_d"
CLASSES = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
ACTORS = ["1001", "1006", "1040", "1064", "1076", "1091"]
# The replica's irregular clips and why each is left out (see tests/data/crema_d/data.py).
LEFT_OUT = {
    "1006_TIE_HAP_XX.wav": "byte-identical recordings under different labels",
    "1006_TIE_NEU_XX.wav": "byte-identical recordings under different labels",
    "1076_MTI_SAD_XX.wav": "holds no speech",
    "1091_WSI_SAD_XX.wav": "the audio file is empty",
}


def data(root: Path = REPLICA, **kwargs: object) -> CREMADDataModule:
    return CREMADDataModule(root=str(root), **kwargs)


def copy_replica(tmp_path: Path) -> Path:
    root = tmp_path / "CREMA-D"
    shutil.copytree(REPLICA / "AudioWAV", root / "AudioWAV")
    shutil.copy(REPLICA / "VideoDemographics.csv", root)
    return root


def test_counts_metadata_and_the_release_irregularities() -> None:
    module = data()
    assert module.class_names == CLASSES and module.num_classes == 6
    assert module.label_map["FEA"] == "fearful"
    records = module.records()
    assert len(records) == 32
    assert count_by(records, "label") == {"angry": 6, "disgust": 6, "fearful": 6, "happy": 5, "neutral": 5, "sad": 4}
    assert count_by(records, "speaker") == {"1001": 6, "1006": 4, "1040": 6, "1064": 6, "1076": 5, "1091": 5}
    assert {r.session for r in records} == {""}
    by_id = {r.utt_id: r for r in records}
    misspelt = by_id["1040_ITH_SAD_X"]  # the level "X" of old copies reads as "XX"
    assert misspelt.label == "sad" and misspelt.sentence == "ITH" and misspelt.extra["intensity"] == "unspecified"
    assert by_id["1001_IEO_ANG_LO"].extra == {"gender": "male", "age": "34", "race": "Caucasian",
                                              "ethnicity": "Not Hispanic", "intensity": "low"}  # fmt: skip
    assert (
        by_id["1076_IEO_NEU_HI"].extra["intensity"] == "high" and by_id["1076_IEO_NEU_HI"].extra["gender"] == "female"
    )
    skipped = {Path(f["path"]).name: f["reason"] for f in module.skipped}
    assert set(skipped) == set(LEFT_OUT), skipped
    for name, reason in LEFT_OUT.items():
        assert reason in skipped[name], (name, skipped[name])
    again = data()
    assert again.records() == records and again.skipped == module.skipped  # the cache answers the same
    module.setup("fit")
    assert module.describe()["skipped"]["count"] == 4


@pytest.mark.parametrize(("protocol", "folds"), [("kfold", 5), ("loso", 6), ("holdout", 1)])
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
        assert stamp["speaker_independent"] is True and sum(stamp["sizes"].values()) == 32
        tested |= parts["test"]
    if protocol != "holdout":
        assert sorted(tested) == ACTORS


def test_speaker_dependent_split_does_not_trip_over_the_duplicated_pair() -> None:
    module = data(protocol="kfold", speaker_dependent=True, fold=1, num_folds=3)
    module.setup("fit")  # the byte-identical pair is gone, so utterance-level folds cannot leak it
    assert module.describe()["speaker_independent"] is False


def test_root_may_be_audiowav_and_demographics_are_optional(tmp_path: Path) -> None:
    reference = data().records()
    assert data(REPLICA / "AudioWAV").records() == reference
    root = copy_replica(tmp_path)
    (root / "VideoDemographics.csv").unlink()
    records = data(root).records()
    assert sorted(r.utt_id for r in records) == sorted(r.utt_id for r in reference)
    assert all(set(r.extra) == {"intensity"} for r in records)
    (root / "VideoDemographics.csv").write_text('"ActorID","Sex"\n1001,"Male"\n')
    with pytest.raises(ManifestError, match=r"VideoDemographics.csv: missing column\(s\) \['Age'\]"):
        data(root).setup("fit")
    (root / "VideoDemographics.csv").write_text('"ActorID","Age","Sex"\n1001,34,"Male"\nabc,20,"Female"\n')
    with pytest.raises(ManifestError, match=r"VideoDemographics.csv:3: ActorID 'abc'"):
        data(root).setup("fit")


def test_missing_or_wrong_root_names_the_path_and_the_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match="needs `root`"):
        CREMADDataModule().setup("fit")
    with pytest.raises(CorpusNotFoundError, match=r"nowhere.*AudioWAV/"):
        data(tmp_path / "nowhere").setup("fit")
    (tmp_path / "AudioMP3").mkdir()
    with pytest.raises(CorpusNotFoundError, match=r"AudioMP3: no CREMA-D AudioWAV/ folder found.*1001_DFA_ANG_XX"):
        data(tmp_path / "AudioMP3").setup("fit")
    lfs = tmp_path / "clone"
    (lfs / "AudioWAV").mkdir(parents=True)
    (lfs / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 82260\n"
    )
    with pytest.raises(CorpusNotFoundError, match=r"Git LFS pointers.*git lfs pull"):
        data(lfs).setup("fit")


def test_unknown_emotion_code_names_the_file(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    shutil.copy(root / "AudioWAV" / "1001_TIE_DIS_XX.wav", root / "AudioWAV" / "1001_TIE_SUR_XX.wav")
    with pytest.raises(ManifestError, match=r"AudioWAV/1001_TIE_SUR_XX.wav: unknown emotion code 'SUR'"):
        data(root).setup("fit")


def test_irregular_names_are_skipped_named_and_counted(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    wav = root / "AudioWAV"
    shutil.copy(wav / "1001_TIE_DIS_XX.wav", wav / "1001_TIE_DIS_XX (1).wav")
    shutil.copy(wav / "1001_TIE_DIS_XX.wav", wav / "1092_TIE_DIS_XX.wav")
    shutil.copy(wav / "1001_TIE_DIS_XX.wav", wav / "1001_ABC_DIS_XX.wav")
    shutil.copy(wav / "1001_TIE_DIS_XX.wav", wav / "1001_IEO_DIS_VH.wav")
    module = data(root)
    module.setup("fit")
    skipped = module.describe()["skipped"]
    reasons = {Path(f["path"]).name: f["reason"] for f in skipped["files"]}
    assert skipped["count"] == 8, reasons
    assert "does not follow" in reasons["1001_TIE_DIS_XX (1).wav"]
    assert "actor 1092" in reasons["1092_TIE_DIS_XX.wav"]
    assert "sentence code ABC" in reasons["1001_ABC_DIS_XX.wav"]
    assert "emotion level VH" in reasons["1001_IEO_DIS_VH.wav"]
    assert sum(module.describe()["sizes"].values()) == 32
    with pytest.raises(AudioReadError, match=r"1001_ABC_DIS_XX.wav: sentence code ABC"):
        data(root, strict=True, cache_manifest=False).setup("fit")


def test_cli_fit_fast_dev_run(tmp_path: Path) -> None:
    cli = main([
        "fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--data", str(CONFIGS / "data" / "crema_d.yaml"),
        "--data.init_args.root", str(REPLICA), "--trainer.fast_dev_run", "true",
        "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path),
        "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2",
    ])  # fmt: skip
    assert cli.trainer.state.finished
    assert cli.model.class_names == CLASSES
    assert cli.datamodule.split.stamp["protocol"] == "kfold"
    assert cli.datamodule.describe()["skipped"]["count"] == 4


def test_parse_crema_d_reads_the_layout_without_a_datamodule() -> None:
    report = ParseReport()
    records = parse_crema_d(REPLICA, report=report)
    names = {Path(r.path).name for r in records}
    # The parser sees names only: the empty clip and the byte-identical pair are the DataModule's to leave out.
    assert len(records) == 35 and {"1006_TIE_HAP_XX.wav", "1006_TIE_NEU_XX.wav", "1091_WSI_SAD_XX.wav"} <= names
    assert [(Path(s["path"]).name, "holds no speech" in s["reason"]) for s in report.skipped] == [
        ("1076_MTI_SAD_XX.wav", True)
    ]
    assert {r.utt_id: r for r in records}["1001_IEO_ANG_LO"].extra["age"] == "34"  # demographics joined
    assert [r.utt_id for r in parse_crema_d(REPLICA / "AudioWAV")] == [r.utt_id for r in records]
