"""MSPImprovDataModule on the committed replica (tests/data/msp_improv, written by its data.py)."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pytest

from ser_lightning.data.base import SERDataModule
from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import ParseReport, count_by
from ser_lightning.data.msp_improv import MSPImprovDataModule, parse_msp_improv
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ManifestError, ProtocolError

from .conftest import CONFIGS, REPO

REPLICA = REPO / "tests" / "data" / "msp_improv" / "MSP-IMPROV"
MISSING_WAV = "MSP-IMPROV-S01A-F04-R-FM02"
SPEAKERS = [f"{g}0{k}" for g in "FM" for k in range(1, 7)]


def module(**kwargs: object) -> MSPImprovDataModule:
    return MSPImprovDataModule(root=str(kwargs.pop("root", REPLICA)), **kwargs)  # type: ignore[arg-type]


def copy_replica(tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPLICA, tmp_path / "MSP-IMPROV"))


def test_counts_labels_speakers_sessions_and_sentences() -> None:
    data = module(cache_manifest=False)
    assert data.class_names == ["angry", "happy", "neutral", "sad"]
    records = data.records()
    assert len(records) == 48
    assert count_by(records, "label") == {"angry": 12, "happy": 12, "neutral": 12, "sad": 12}
    assert count_by(records, "speaker") == {s: 4 for s in SPEAKERS}
    assert count_by(records, "session") == {f"ses0{k}": 8 for k in range(1, 7)}
    assert {r.session for r in records if r.speaker in ("F03", "M03")} == {"ses03"}
    assert count_by(records, "sentence") == {"": 12, "S01": 12, "S02": 12, "S03": 12}
    assert all(r.sentence == "" for r in records if r.extra["condition"] == "natural")
    by_id = {r.utt_id: r for r in records}
    # the consensus category is the label, not the target emotion of the sentence
    clip = by_id["MSP-IMPROV-S02H-F01-R-FM01"]
    assert clip.label == "happy" and clip.extra["target_emotion"] == "happy"
    other = by_id["MSP-IMPROV-S01A-F01-P-FM02"]
    assert other.label == "sad" and other.extra["target_emotion"] == "angry"
    assert sum(r.label != r.extra["target_emotion"] for r in records) > 20
    assert by_id["MSP-IMPROV-S03S-F03-S-FM01"].extra["naturalness"] == "NaN"
    assert Path(clip.path).relative_to(REPLICA).parts == ("Audio", "session1", "S02H", "R", f"{clip.utt_id}.wav")
    # O and X dropped and counted; the labelled clip without audio skipped; the unlabelled wav ignored
    assert data.dropped == {"O": 1, "X": 1}
    assert [Path(s["path"]).stem for s in data.skipped] == [MISSING_WAV]
    assert data.unlabelled == 1 and "MSP-IMPROV-S02H-M05-R-MF02" not in by_id


@pytest.mark.parametrize(
    ("conditions", "count"),
    [(["target_read"], 12), (["natural"], 12), (["target_improvised", "other_improvised"], 24), (None, 48)],
)
def test_condition_selection(conditions: list[str] | None, count: int) -> None:
    data = module(conditions=conditions)
    records = data.records()
    assert len(records) == count
    if conditions:
        assert {r.extra["condition"] for r in records} == set(conditions)
    letters = {"target_improvised": "T", "target_read": "R", "other_improvised": "S", "natural": "P"}
    assert all(r.utt_id.split("-")[4] == letters[r.extra["condition"]] for r in records)


def test_invalid_conditions() -> None:
    with pytest.raises(ValueError, match="unknown condition"):
        module(conditions=["read"])
    with pytest.raises(ValueError, match="at least one"):
        module(conditions=[])


@pytest.mark.parametrize(
    ("protocol", "folds", "extra"),
    [("loso", 12, {}), ("lsso", 6, {}), ("kfold", 5, {}), ("holdout", 1, {}),
     ("kfold", 5, {"speaker_dependent": True})],
    ids=["loso", "lsso", "kfold", "holdout", "kfold-speaker-dependent"],
)  # fmt: skip
def test_every_fold_of_every_protocol(protocol: str, folds: int, extra: dict[str, object]) -> None:
    for fold in range(folds):
        data = module(protocol=protocol, fold=fold, **extra)
        data.setup("fit")
        parts = data.split.parts()
        assert sum(len(p) for p in parts.values()) == 48
        stamp = data.describe()
        if extra.get("speaker_dependent"):
            assert stamp["speaker_independent"] is False
            continue
        speakers = {name: {r.speaker for r in part} for name, part in parts.items()}
        assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["val"]
        assert not speakers["val"] & speakers["test"]
        sessions = {name: {r.session for r in part} for name, part in parts.items()}
        assert not sessions["train"] & (sessions["val"] | sessions["test"])
        if protocol == "loso":  # test on one actor, validate on the session partner
            (test,), (val,) = speakers["test"], speakers["val"]
            assert test[1:] == val[1:] and test != val
            assert stamp["test_speakers"] == [sorted(SPEAKERS)[fold]]
        # every actor reads the same sentences: the stamp says so
        assert stamp["shared_sentences"] is True
    with pytest.raises(ProtocolError, match="out of range"):
        module(protocol=protocol, fold=folds, **extra).setup("fit")


def test_natural_interaction_has_no_shared_sentences() -> None:
    data = module(conditions=["natural"], protocol="lsso", fold=2)
    data.setup("fit")
    assert data.describe()["shared_sentences"] is False


def test_both_spellings_of_the_label_file_and_its_absence(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    (root / "Labels").mkdir()
    (root / "Evalution.txt").rename(root / "Labels" / "Evaluation.txt")  # the other spelling, one folder down
    assert len(module(root=root).records()) == 48
    (root / "Labels" / "Evaluation.txt").unlink()
    with pytest.raises(CorpusNotFoundError, match=rf"no consensus label file Evalution.txt or Evaluation.txt .*{root}"):
        module(root=root).records()


def test_missing_or_wrong_root_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match="needs `root`"):
        MSPImprovDataModule().setup("fit")
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusNotFoundError, match=f"{missing}.*MSP-IMPROV folder.*Evalution.txt"):
        module(root=missing).setup("fit")
    root = copy_replica(tmp_path)
    shutil.rmtree(root / "Audio")
    with pytest.raises(CorpusNotFoundError, match=rf"no MSP-IMPROV-\*.wav audio file below {root}"):
        module(root=root).setup("fit")


def test_unknown_label_code_names_file_and_line(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    label_file = root / "Evalution.txt"
    lines = label_file.read_text().splitlines()
    lineno = next(i for i, line in enumerate(lines, start=1) if line.startswith("UTD-IMPROV-S03S-M02-S-MF01.avi;"))
    assert "S-MF01.avi; " in lines[lineno - 1]
    lines[lineno - 1] = lines[lineno - 1].replace("S-MF01.avi; ", "S-MF01.avi; Q", 1)  # e.g. "; QA;"
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ManifestError, match=rf"Evalution.txt:{lineno}: unknown label code 'Q[AHNS]' \(expected one of A, H"
    ):
        module(root=root).records()


def test_rater_lines_are_not_clips_and_a_block_must_start_with_a_clip(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    label_file = root / "Evalution.txt"
    text = label_file.read_text()
    # a blank line inside a block makes a rater line the first line of a block
    broken = text.replace("A2HM35CWB7IIFM; Angry;", "\nA2HM35CWB7IIFM; Angry;", 1)
    label_file.write_text(broken)
    lineno = next(i for i, line in enumerate(broken.splitlines(), start=1) if line.startswith("A2HM35CWB7IIFM; Angry;"))
    with pytest.raises(ManifestError, match=rf"Evalution.txt:{lineno}: expected a clip line"):
        module(root=root).records()


def test_irregular_files_are_skipped_and_counted_or_fail_when_strict(tmp_path: Path) -> None:
    data = module(protocol="lsso", fold=3)
    data.setup("fit")
    stamp = data.describe()
    assert stamp["skipped"]["count"] == 1
    (skipped,) = stamp["skipped"]["files"]
    assert skipped["path"] == f"{MISSING_WAV}.wav" and "Evalution.txt:" in skipped["reason"]
    with pytest.raises(AudioReadError, match=MISSING_WAV):
        module(strict=True, cache_manifest=False).records()
    root = copy_replica(tmp_path)
    good = next((root / "Audio" / "session2").rglob("*.wav"))
    shutil.copy(good, good.parent / "MSP-IMPROV-S01A-F02-Q-FM09.wav")  # unknown condition letter
    (root / "Audio" / "session6" / "S01A" / "T" / "MSP-IMPROV-S01A-F06-T-FM01.wav").write_bytes(b"RIFF junk")
    data = module(root=root)
    assert len(data.records()) == 47
    reasons = {Path(s["path"]).name: s["reason"] for s in data.skipped}
    assert "does not follow" in reasons["MSP-IMPROV-S01A-F02-Q-FM09.wav"]
    assert "cannot read audio" in reasons["MSP-IMPROV-S01A-F06-T-FM01.wav"]


def test_the_cli_exposes_every_base_argument_with_its_default() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(MSPImprovDataModule)  # follows **kwargs into CorpusDataModule and SERDataModule
    defaults = parser.get_defaults()
    for base in (SERDataModule, CorpusDataModule):
        for name, param in inspect.signature(base.__init__).parameters.items():
            if name not in ("self", "kwargs"):
                assert name in defaults and defaults[name] == param.default, name


def test_cli_fast_dev_run(tmp_path: Path) -> None:
    from ser_lightning.cli import main

    cli = main(["fit", "--config", str(CONFIGS / "dense_highway.yaml"),
                "--data", str(CONFIGS / "data" / "msp_improv.yaml"), "--data.init_args.root", str(REPLICA),
                "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false",
                "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path),
                "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2"])  # fmt: skip
    assert isinstance(cli.datamodule, MSPImprovDataModule)
    assert cli.model.class_names == ["angry", "happy", "neutral", "sad"]
    assert cli.datamodule.describe()["test_speakers"] == ["F01"]


def test_parse_msp_improv_reads_the_layout_without_a_datamodule() -> None:
    report = ParseReport()
    records = parse_msp_improv(REPLICA, report=report)
    assert len(records) == 48 and count_by(records, "speaker") == {s: 4 for s in SPEAKERS}
    assert report.dropped == {"O": 1, "X": 1} and report.ignored == {"unlabelled": 1}
    assert [Path(s["path"]).stem for s in report.skipped] == [MISSING_WAV]
    natural = parse_msp_improv(REPLICA, conditions=["natural"])
    assert natural and {r.extra["condition"] for r in natural} == {"natural"}
