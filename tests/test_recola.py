from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ser_lightning.cli import main
from ser_lightning.data.manifest import ParseReport, count_by
from ser_lightning.data.recola import (
    ContinuousDataset,
    RECOLADataModule,
    collate_continuous,
    parse_recola,
    ratings_on_grid,
    read_arff_ratings,
)
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ManifestError

from .conftest import CONFIGS, REPO

REPLICA = REPO / "tests" / "data" / "recola"
PARTICIPANTS = ["dev_1", "dev_2", "train_1", "train_2"]
SR = 16000
FRAME = SR // 25  # samples per 40 ms target frame


def copy_replica(tmp_path: Path) -> Path:
    root = tmp_path / "AVEC_2016"
    shutil.copytree(REPLICA, root, ignore=shutil.ignore_patterns("data.py", "__pycache__"))
    return root


def data(root: Path = REPLICA, **kwargs) -> RECOLADataModule:
    return RECOLADataModule(root=str(root), **kwargs)


def frame_rms(waveform: torch.Tensor, frames: int) -> np.ndarray:
    return waveform[: frames * FRAME].reshape(frames, FRAME).pow(2).mean(1).sqrt().numpy()


def assert_aligned(waveform: torch.Tensor, arousal: torch.Tensor) -> None:
    """The replica's noise level in frame i is 0.25 x arousal[i]: aligned iff the per-frame RMS tracks it."""
    frames = min(len(arousal), waveform.numel() // FRAME)
    rms = frame_rms(waveform, frames)
    assert np.corrcoef(rms, arousal[:frames].numpy())[0, 1] > 0.99
    assert np.allclose(rms / arousal[:frames].numpy(), 0.25, rtol=0.1)


def test_replica_records_and_skips() -> None:
    module = data(cache_manifest=False)
    assert module.target_names == ["arousal", "valence"] and module.num_targets == 2
    records = module.records()
    assert sorted(r.speaker for r in records) == PARTICIPANTS
    assert count_by(records, "label") == {"continuous": 4}
    assert {r.utt_id: r.extra["avec_set"] for r in records} == {"dev_1": "dev", "dev_2": "dev", "train_1": "train",
                                                                 "train_2": "train"}  # fmt: skip
    assert all(r.session == "" and r.duration == pytest.approx(3.0) for r in records)
    assert all(Path(r.extra["arousal_file"]).name == f"{r.utt_id}.arff" for r in records)
    # dev_3's ratings have no recording: skipped and counted; test_1 (no public ratings) is left out silently.
    assert sorted(Path(s["path"]).parts[-2:] for s in module.skipped) == [("arousal", "dev_3.arff"),
                                                                            ("valence", "dev_3.arff")]  # fmt: skip
    assert all("no recording" in s["reason"] for s in module.skipped)


def test_target_selection_and_argument_checks() -> None:
    module = data(targets=["valence"], batch_size=2)
    assert module.target_names == ["valence"]
    module.setup("fit")
    item = module.datasets["val"][0]
    assert item["targets"].shape == (75, 1)
    with pytest.raises(ValueError, match="unknown RECOLA target"):
        data(targets=["dominance"])
    with pytest.raises(ValueError, match="duplicates"):
        data(targets=["arousal", "arousal"])
    with pytest.raises(ValueError, match="target_rate_hz"):
        data(target_rate_hz=0)


def test_arff_parser_reads_and_names_file_and_line_of_malformed_rows(tmp_path: Path) -> None:
    times, _ = read_arff_ratings(REPLICA / "ratings_gold_standard" / "arousal" / "train_1.arff")
    assert len(times) == 76 and times[0] == 0 and times[-1] == pytest.approx(3.0)
    assert np.allclose(np.diff(times), 0.04)
    header = "@relation X\n@attribute Instance_name string\n@attribute frameTime numeric\n"
    gold = header + "@attribute GoldStandard numeric\n@data\n"
    cases = {
        "columns": (gold + "'a',0.00,0.1\n'a',0.04\n", r"bad.arff:7: expected 3 .*Instance_name, frameTime"),
        "number": (gold + "'a',0.00,abc\n", r"bad.arff:6: .*not a number"),
        "order": (gold + "'a',0.04,1\n'a',0.04,2\n", r"bad.arff:7: .*increase"),
        "header": (header + "@data\n'a',0.00\n", r"bad.arff:4: .*GoldStandard"),
        "no data": (header + "@attribute GoldStandard numeric\n", r"bad.arff: no @data"),
        "empty": (gold, r"bad.arff: no rating rows"),
        "stray": (header + "garbage\n", r"bad.arff:4: unexpected line"),
    }  # fmt: skip
    for text, message in cases.values():
        (tmp_path / "bad.arff").write_text(text)
        with pytest.raises(ManifestError, match=message):
            read_arff_ratings(tmp_path / "bad.arff")


def test_malformed_ratings_fail_setup_naming_file_and_line(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    arff = root / "ratings_gold_standard" / "arousal" / "train_2.arff"
    lines = arff.read_text().splitlines()
    lines[11] = "'train_2',0.12,not-a-number"
    arff.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"train_2.arff:12: "):
        data(root).setup("fit")


def test_recording_without_ratings_is_skipped_and_counted(tmp_path: Path) -> None:
    root = copy_replica(tmp_path)
    (root / "ratings_gold_standard" / "valence" / "train_2.arff").unlink()
    (root / "recordings_audio" / "notes.txt").write_text("not audio")
    module = data(root, protocol="loso", fold=0)
    module.setup("fit")
    stamp = module.describe()
    reasons = {Path(f["path"]).name: f["reason"] for f in stamp["skipped"]["files"]}
    assert "no gold-standard valence ratings" in reasons["train_2.wav"]
    assert "not an audio file" in reasons["notes.txt"]
    assert stamp["skipped"]["count"] == 4  # + dev_3's two ratings files
    assert sum(stamp["sizes"].values()) == 3
    with pytest.raises(AudioReadError, match="notes.txt|dev_3.arff|train_2.wav"):
        data(root, strict=True, cache_manifest=False).records()


def test_missing_or_wrong_root_names_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match="nowhere.*recordings_audio"):
        data(tmp_path / "nowhere").setup("fit")
    with pytest.raises(CorpusNotFoundError, match="needs `root`"):
        RECOLADataModule().setup("fit")
    (tmp_path / "recordings_audio").mkdir()
    with pytest.raises(
        CorpusNotFoundError, match=rf"{tmp_path} is not an AVEC 2016 RECOLA folder: .*ratings_gold_standard"
    ):
        data(tmp_path).setup("fit")


@pytest.mark.parametrize(
    ("protocol", "folds", "extra"),
    [("loso", 4, {}), ("kfold", 4, {"num_folds": 4}), ("kfold", 3, {"num_folds": 3}), ("holdout", 1, {})],
)
def test_protocols_over_participants(protocol: str, folds: int, extra: dict) -> None:
    for fold in range(folds):
        module = data(protocol=protocol, fold=fold, **extra)
        module.setup("fit")
        parts = {name: {r.speaker for r in part} for name, part in module.split.parts().items()}
        assert all(parts.values())
        assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
        assert parts["train"] | parts["val"] | parts["test"] == set(PARTICIPANTS)


def test_loaders_yield_aligned_targets() -> None:
    module = data(protocol="kfold", num_folds=4, fold=0, batch_size=2, segment_seconds=1.0)
    module.setup("fit")
    full = {r.utt_id: ContinuousDataset([r], ["arousal", "valence"], SR)[0] for r in module.split.train}
    torch.manual_seed(0)
    for _ in range(3):
        batch = next(iter(module.train_dataloader()))
        assert batch["waveform"].shape == (2, SR) and batch["length"].tolist() == [SR, SR]
        assert batch["targets"].shape == (2, 25, 2) and batch["target_length"].tolist() == [25, 25]
        assert batch["label"].tolist() == [0, 0]
        for row, utt in enumerate(batch["utt_id"]):
            targets = full[utt]["targets"]
            starts = [s for s in range(len(targets) - 24) if torch.equal(targets[s : s + 25], batch["targets"][row])]
            assert len(starts) == 1  # the crop's targets are a frame-aligned window of the recording's
            assert_aligned(batch["waveform"][row], batch["targets"][row, :, 0])
            whole = full[utt]["waveform"][starts[0] * FRAME : (starts[0] + 25) * FRAME]
            assert torch.allclose(batch["waveform"][row][FRAME:-FRAME], whole[FRAME:-FRAME], atol=1e-3)
    val = next(iter(module.val_dataloader()))
    assert val["waveform"].shape == (1, 3 * SR)
    # 76 ratings at 0.00 ... 3.00 s: the last frame starts where the audio ends and is dropped.
    assert val["targets"].shape == (1, 75, 2) and val["target_length"].tolist() == [75]
    assert_aligned(val["waveform"][0], val["targets"][0, :, 0])
    test = next(iter(module.test_dataloader()))
    assert test["targets"].shape[1] == 75


def test_collate_pads_waveforms_and_targets() -> None:
    items = [
        {"waveform": torch.ones(640), "length": 640, "targets": torch.ones(1, 2), "target_length": 1,
         "speaker": "a", "utt_id": "a", "path": "a", "index": 0},
        {"waveform": torch.ones(1280), "length": 1280, "targets": torch.ones(2, 2), "target_length": 2,
         "speaker": "b", "utt_id": "b", "path": "b", "index": 1},
    ]  # fmt: skip
    batch = collate_continuous(items)
    assert batch["waveform"].shape == (2, 1280) and batch["targets"].shape == (2, 2, 2)
    assert batch["target_length"].tolist() == [1, 2] and batch["length"].tolist() == [640, 1280]
    assert torch.all(batch["targets"][0, 1] == 0) and torch.all(batch["waveform"][0, 640:] == 0)
    assert batch["label"].tolist() == [0, 0]


def test_other_target_rates_interpolate_the_gold_standard() -> None:
    times, values = read_arff_ratings(REPLICA / "ratings_gold_standard" / "valence" / "dev_1.arff")
    at25, at50 = ratings_on_grid(times, values, 25.0), ratings_on_grid(times, values, 50.0)
    assert len(at25) == 76 and np.allclose(at25, values)
    assert len(at50) == 151 and np.allclose(at50[::2], values)
    assert np.allclose(at50[1::2], (values[:-1] + values[1:]) / 2)
    module = data(target_rate_hz=50.0)
    module.setup("fit")
    assert module.datasets["val"][0]["targets"].shape == (150, 2)


def test_predict_on_files_without_ratings() -> None:
    module = data(predict_paths=[str(REPLICA / "recordings_audio" / "test_1.wav")], protocol="holdout")
    module.setup("predict")
    batch = next(iter(module.predict_dataloader()))
    assert batch["waveform"].shape == (1, 4000) and batch["targets"].shape == (1, 0, 2)


def test_replica_generator_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("recola_replica", REPLICA / "data.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    monkeypatch.setattr(generator, "HERE", tmp_path)
    generator.main()
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert fresh == sorted(p.relative_to(REPLICA) for p in REPLICA.rglob("*") if p.is_file()
                           and p.name != "data.py" and "__pycache__" not in p.parts)  # fmt: skip
    assert all((tmp_path / p).read_bytes() == (REPLICA / p).read_bytes() for p in fresh)


def test_config_composes_with_the_main_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--data", str(CONFIGS / "data" / "recola.yaml"),
              "--print_config"])  # fmt: skip
    assert not exit_.value.code
    printed = yaml.safe_load(capsys.readouterr().out)["data"]
    assert printed["class_path"] == "ser_lightning.data.recola.RECOLADataModule"
    assert printed["init_args"]["protocol"] == "holdout" and printed["init_args"]["segment_seconds"] == 8.0


def test_parse_recola_reads_the_layout_without_a_datamodule() -> None:
    report = ParseReport()
    records = parse_recola(REPLICA, report=report)
    assert sorted(r.speaker for r in records) == PARTICIPANTS and count_by(records, "label") == {"continuous": 4}
    assert all(r.duration == 0 and not r.checksum for r in records)  # probing and hashing are the DataModule's
    assert sorted(Path(s["path"]).parts[-2:] for s in report.skipped) == [("arousal", "dev_3.arff"),
                                                                            ("valence", "dev_3.arff")]  # fmt: skip
    arousal = parse_recola(REPLICA, targets=["arousal"])
    assert all("valence_file" not in r.extra for r in arousal) and len(arousal) == 4
