"""IEMOCAPDataModule on the committed replica (tests/data/iemocap, written by its data.py)."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pytest

from ser_lightning.data.base import SERDataModule
from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.iemocap import IEMOCAPDataModule, parse_iemocap
from ser_lightning.data.manifest import ParseReport, count_by
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ManifestError, ProtocolError

from .conftest import CONFIGS, REPO

REPLICA = REPO / "tests" / "data" / "iemocap" / "IEMOCAP_full_release"
MISSING_WAV = "Ses02F_impro02_M002"


def module(**kwargs: object) -> IEMOCAPDataModule:
    return IEMOCAPDataModule(root=str(kwargs.pop("root", REPLICA)), **kwargs)  # type: ignore[arg-type]


def copy_replica(tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPLICA, tmp_path / "IEMOCAP_full_release"))


def test_four_class_counts_label_map_and_speakers() -> None:
    data = module(cache_manifest=False)
    assert data.class_names == ["angry", "happy", "neutral", "sad"] and data.num_classes == 4
    records = data.records()
    assert len(records) == 32
    assert count_by(records, "label") == {"angry": 7, "happy": 10, "neutral": 8, "sad": 7}
    assert count_by(records, "session") == {"Ses01": 7, "Ses02": 6, "Ses03": 6, "Ses04": 6, "Ses05": 7}
    assert count_by(records, "speaker") == {f"Ses0{k}{g}": 4 if (k, g) in ((1, "F"), (5, "F")) else 3
                                            for k in range(1, 6) for g in "FM"}  # fmt: skip
    by_id = {r.utt_id: r for r in records}
    # hap and exc are merged into happy
    assert {r.extra["code"] for r in records if r.label == "happy"} == {"hap", "exc"}
    # the speaker is the turn's actor, not the dialog's marker wearer
    assert by_id["Ses01F_impro01_M000"].speaker == "Ses01M" and by_id["Ses05M_impro04_F000"].speaker == "Ses05F"
    # the evaluator line that copies a turn line ("... F001 sad ...") is not read as the label
    assert by_id["Ses01F_impro01_F001"].label == "happy"
    # suffixed dialog names
    assert by_id["Ses03M_impro05a_M001"].extra["dialog_type"] == "improvised"
    assert by_id["Ses05M_script01_1b_F000"].sentence == "script01_1"
    assert by_id["Ses01F_impro01_F000"].sentence == ""
    assert all(Path(r.path).is_absolute() and Path(r.path).name == f"{r.utt_id}.wav" for r in records)
    # other codes dropped and counted; the labelled turn without audio skipped; the wav without label ignored
    assert data.dropped == {"dis": 1, "fea": 2, "fru": 2, "oth": 1, "sur": 3, "xxx": 2}
    assert [Path(s["path"]).stem for s in data.skipped] == [MISSING_WAV]
    assert "Ses04M_script03_2_M001" not in by_id and MISSING_WAV not in by_id


def test_seven_class_set_of_seed_004() -> None:
    data = module(label_set="7class", cache_manifest=False)
    assert data.class_names == ["angry", "happy", "neutral", "sad", "fearful", "disgust", "surprised"]
    records = data.records()
    assert count_by(records, "label") == {"angry": 7, "disgust": 1, "fearful": 2, "happy": 10, "neutral": 8,
                                          "sad": 7, "surprised": 3}  # fmt: skip
    assert data.dropped == {"fru": 2, "oth": 1, "xxx": 2}


@pytest.mark.parametrize(("dialog_type", "count"), [("improvised", 20), ("scripted", 12)])
def test_dialog_type_selection(dialog_type: str, count: int) -> None:
    records = module(dialog_type=dialog_type).records()
    assert len(records) == count
    assert {r.extra["dialog_type"] for r in records} == {dialog_type}
    assert all(("_impro" in r.utt_id) == (dialog_type == "improvised") for r in records)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="label_set"):
        module(label_set="6class")
    with pytest.raises(ValueError, match="dialog_type"):
        module(dialog_type="read")


@pytest.mark.parametrize(
    ("protocol", "folds", "extra"),
    [("loso", 10, {}), ("lsso", 5, {}), ("kfold", 5, {}), ("holdout", 1, {}),
     ("kfold", 5, {"speaker_dependent": True})],
    ids=["loso", "lsso", "kfold", "holdout", "kfold-speaker-dependent"],
)  # fmt: skip
def test_every_fold_of_every_protocol(protocol: str, folds: int, extra: dict[str, object]) -> None:
    for fold in range(folds):
        data = module(protocol=protocol, fold=fold, **extra)
        data.setup("fit")
        parts = data.split.parts()
        assert sum(len(p) for p in parts.values()) == 32
        speakers = {name: {r.speaker for r in part} for name, part in parts.items()}
        stamp = data.describe()
        if extra.get("speaker_dependent"):
            assert stamp["speaker_independent"] is False
            continue
        assert stamp["speaker_independent"] is True
        assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["val"]
        assert not speakers["val"] & speakers["test"]
        sessions = {name: {r.session for r in part} for name, part in parts.items()}
        assert not sessions["train"] & (sessions["val"] | sessions["test"])
        if protocol == "loso":  # test on one actor, validate on the session partner
            (test,), (val,) = speakers["test"], speakers["val"]
            assert test[:5] == val[:5] and test != val
        if protocol == "lsso":
            assert len(sessions["test"]) == 1 and len(speakers["test"]) == 2
    with pytest.raises(ProtocolError, match="out of range"):
        module(protocol=protocol, fold=folds, **extra).setup("fit")


def test_scripted_sentences_shared_across_sessions_are_stamped() -> None:
    data = module(protocol="lsso", fold=0)  # test Ses01 (script01_1), train Ses03..Ses05 (script01_1b, ...)
    data.setup("fit")
    assert data.describe()["shared_sentences"] is True
    improvised = module(protocol="lsso", fold=0, dialog_type="improvised")
    improvised.setup("fit")
    assert improvised.describe()["shared_sentences"] is False


def test_missing_or_wrong_root_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match="needs `root`"):
        IEMOCAPDataModule().setup("fit")
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusNotFoundError, match=f"{missing}.*IEMOCAP_full_release.*Session1"):
        module(root=missing).setup("fit")
    with pytest.raises(
        CorpusNotFoundError, match=r"no Session1\.\.Session5 folder.*did you mean .*IEMOCAP_full_release"
    ):
        module(root=REPLICA.parent).setup("fit")
    root = copy_replica(tmp_path)
    shutil.rmtree(root / "Session3" / "sentences")
    with pytest.raises(CorpusNotFoundError, match=r"Session3/sentences/wav does not exist; expected .*EmoEvaluation"):
        module(root=root).setup("fit")


def test_unknown_label_code_names_file_and_line(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    label_file = root / "Session4" / "dialog" / "EmoEvaluation" / "Ses04F_impro03.txt"
    lines = label_file.read_text().splitlines()
    lineno = next(i for i, line in enumerate(lines, start=1) if "Ses04F_impro03_M000\tsad" in line)
    label_file.write_text("\n".join(line.replace("\tsad\t", "\tzzz\t") for line in lines) + "\n")
    with pytest.raises(
        ManifestError, match=rf"Ses04F_impro03.txt:{lineno}: unknown label code 'zzz' \(expected one of neu"
    ):
        module(root=root).records()


def test_malformed_block_names_file_and_line(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    label_file = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_script02_1.txt"
    text = label_file.read_text().replace("\tSes02M_script02_1_F001\t", "\tSes02M_script02_1-F001\t")
    label_file.write_text(text)
    lineno = next(i for i, line in enumerate(text.splitlines(), start=1) if "script02_1-F001" in line)
    with pytest.raises(ManifestError, match=rf"Ses02M_script02_1.txt:{lineno}: malformed turn name"):
        module(root=root).records()


def test_missing_wav_is_skipped_and_counted_or_fails_when_strict() -> None:
    data = module(protocol="lsso", fold=1)
    data.setup("fit")
    stamp = data.describe()
    assert stamp["skipped"]["count"] == 1
    (skipped,) = stamp["skipped"]["files"]
    assert skipped["path"].endswith(f"{MISSING_WAV}.wav") and "Ses02F_impro02.txt" in skipped["reason"]
    assert data.hparams["split"]["skipped_files"] == 1
    with pytest.raises(AudioReadError, match=MISSING_WAV):
        module(strict=True, cache_manifest=False).records()


def test_unreadable_wav_is_skipped(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    bad = root / "Session5" / "sentences" / "wav" / "Ses05M_impro04" / "Ses05M_impro04_F000.wav"
    bad.write_bytes(b"RIFF not a wav")
    data = module(root=root)
    records = data.records()
    assert len(records) == 31
    assert {Path(s["path"]).name for s in data.skipped} == {bad.name, f"{MISSING_WAV}.wav"}


def test_the_cli_exposes_every_base_argument_with_its_default() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(IEMOCAPDataModule)  # follows **kwargs into CorpusDataModule and SERDataModule
    defaults = parser.get_defaults()
    for base in (SERDataModule, CorpusDataModule):
        for name, param in inspect.signature(base.__init__).parameters.items():
            if name not in ("self", "kwargs"):
                assert name in defaults and defaults[name] == param.default, name
    assert "label_set" in (IEMOCAPDataModule.__doc__ or "") and "dialog_type" in (IEMOCAPDataModule.__doc__ or "")


def test_cli_fast_dev_run(tmp_path: Path) -> None:
    from ser_lightning.cli import main

    cli = main(["fit", "--config", str(CONFIGS / "dense_highway.yaml"),
                "--data", str(CONFIGS / "data" / "iemocap.yaml"), "--data.init_args.root", str(REPLICA),
                "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false",
                "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path),
                "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2"])  # fmt: skip
    assert isinstance(cli.datamodule, IEMOCAPDataModule)
    assert cli.model.class_names == ["angry", "happy", "neutral", "sad"]
    assert cli.datamodule.protocol == "loso" and cli.datamodule.describe()["speaker_independent"] is True


def test_parse_iemocap_reads_the_layout_without_a_datamodule() -> None:
    report = ParseReport()
    records = parse_iemocap(REPLICA, report=report)
    assert len(records) == 32 and count_by(records, "label") == {"angry": 7, "happy": 10, "neutral": 8, "sad": 7}
    assert report.dropped == {"dis": 1, "fea": 2, "fru": 2, "oth": 1, "sur": 3, "xxx": 2}
    assert [Path(s["path"]).stem for s in report.skipped] == [MISSING_WAV]
    assert all(not r.checksum and r.corpus == "iemocap" for r in records)
    improvised = parse_iemocap(REPLICA, dialog_type="improvised", label_set="7class")
    assert improvised and {r.extra["dialog_type"] for r in improvised} == {"improvised"}
