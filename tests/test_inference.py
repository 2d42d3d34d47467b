"""The inference API (files, folders with broken files, arrays at other rates), the timeline, and the prediction
files' schemas (the API's and ``predict``'s)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from ser_lightning.audio import read_audio, resample
from ser_lightning.callbacks import PredictionWriter
from ser_lightning.data.dataset import UtteranceDataset, collate_utterances
from ser_lightning.data.manifest import Utterance
from ser_lightning.inference import EmotionRecognizer, emotion_timeline
from ser_lightning.inference.__main__ import main as inference_main
from ser_lightning.models import DenseHighway, EndToEndRegressor, SERTask, segment_starts
from ser_lightning.predictions import SCHEMA

CLASSES = ["neutral", "happy", "angry", "sad"]


def save_checkpoint(model: SERTask, path: Path) -> Path:
    """Saves a model as LightningCLI does (the hyperparameters name the class)."""
    model.hparams["_class_path"] = f"{type(model).__module__}.{type(model).__name__}"
    model.hparams["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      default_root_dir=str(path.parent))  # fmt: skip
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = DenseHighway(num_classes=4, class_names=CLASSES, growth_rate=4, block_layers=2, lstm_hidden=8,
                         highway_units=8, segment_frames=64)  # fmt: skip
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("clf") / "model.ckpt")


@pytest.fixture(scope="module")
def regressor_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = EndToEndRegressor(num_targets=2, target_names=["arousal", "valence"], conv_channels=(4, 4),
                              lstm_hidden=8, lstm_layers=1)  # fmt: skip
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("reg") / "model.ckpt")


@pytest.fixture()
def folder(tiny_corpus: Path, tmp_path: Path) -> Path:
    """Three utterances of the tiny corpus, an undecodable file and a silent one."""
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    wavs = sorted((tiny_corpus / "wav").rglob("*.wav"))[:3]
    for i, wav in enumerate(wavs):
        (out / ("sub" if i == 2 else "") / wav.name).write_bytes(wav.read_bytes())
    (out / "broken.wav").write_bytes(b"not audio at all")
    sf.write(out / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    return out


def test_api_on_a_folder_with_broken_files(classifier_ckpt: Path, folder: Path) -> None:
    recognizer = EmotionRecognizer.from_checkpoint(classifier_ckpt, device="cpu", batch_size=2)
    assert recognizer.class_names == CLASSES and recognizer.sample_rate == 16000
    records = recognizer.predict(folder)
    by_id = {r.utt_id: r for r in records}
    assert len(records) == 5
    assert by_id["broken"].status == "error" and by_id["broken"].kind == "unreadable"
    assert by_id["silent"].status == "error" and by_id["silent"].kind == "silent"
    assert "silence" in by_id["silent"].error and by_id["broken"].posteriors is None
    good = [r for r in records if r.ok]
    assert len(good) == 3
    model = recognizer.model
    for r in good:
        assert r.posteriors.sum() == pytest.approx(1.0, abs=1e-6)
        assert r.predicted == CLASSES[int(np.argmax(r.posteriors))]
        assert r.duration_s == pytest.approx(sf.info(r.path).duration, abs=1e-3)
        waveform = torch.from_numpy(read_audio(r.path, 16000))[None]
        with torch.no_grad():
            alone = model(waveform).double().numpy()[0]
        np.testing.assert_allclose(r.posteriors, alone, atol=1e-5)  # batching and padding change nothing
    # a list of paths gives the same results in the given order; a missing path is an error up front
    again = recognizer.predict([good[1].path, good[0].path])
    np.testing.assert_allclose(again[0].posteriors, good[1].posteriors, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no such file"):
        recognizer.predict(folder / "missing.wav")


def test_api_on_arrays_at_other_rates_and_channels(classifier_ckpt: Path, tiny_corpus: Path) -> None:
    recognizer = EmotionRecognizer.from_checkpoint(classifier_ckpt, device="cpu")
    wav = sorted((tiny_corpus / "wav").rglob("*.wav"))[0]
    mono = read_audio(wav, 16000)
    [from_file] = recognizer.predict(wav)
    stereo = np.stack([mono, mono], axis=1)
    low = resample(mono, 16000, 8000)
    results = recognizer.predict([mono, stereo, low, np.zeros(100, np.float32), np.full(8000, np.nan)],
                                 sample_rate=16000)  # fmt: skip
    np.testing.assert_allclose(results[0].posteriors, from_file.posteriors, atol=1e-6)
    np.testing.assert_allclose(results[1].posteriors, from_file.posteriors, atol=1e-6)  # mixed to mono
    assert [r.status for r in results[3:]] == ["error", "error"]
    assert results[3].kind == "too_short" and results[4].kind == "non_finite"
    # an 8 kHz array is resampled to the model's rate, as files are
    [at_8k] = recognizer.predict(low, sample_rate=8000)
    with torch.no_grad():
        expected = recognizer.model(torch.from_numpy(resample(low, 8000, 16000))[None]).double().numpy()[0]
    np.testing.assert_allclose(at_8k.posteriors, expected, atol=1e-6)
    with pytest.raises(ValueError, match="sample_rate"):
        recognizer.predict(mono)


def test_api_writes_predicts_csv_and_json_schemas(classifier_ckpt: Path, folder: Path, tmp_path: Path) -> None:
    recognizer = EmotionRecognizer.from_checkpoint(classifier_ckpt, device="cpu")
    records = recognizer.predict(folder)
    csv_path, json_path = recognizer.write(records, tmp_path / "out")
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["utt_id", "path", "predicted", *(f"p_{c}" for c in CLASSES), "status", "error"]
    assert [r["status"] for r in rows].count("error") == 2
    broken = next(r for r in rows if r["utt_id"] == "broken")
    assert broken["predicted"] == "" and broken["p_happy"] == "" and "cannot read audio" in broken["error"]
    data = json.loads(json_path.read_text())
    assert data["schema"] == SCHEMA and data["task"] == "classification" and data["class_names"] == CLASSES
    assert data["model"] == "DenseHighway" and data["sample_rate"] == 16000
    entry = next(e for e in data["predictions"] if e["status"] == "ok")
    assert set(entry) == {"utt_id", "path", "status", "error", "kind", "duration_s", "predicted", "posteriors"}
    assert list(entry["posteriors"]) == CLASSES and entry["predicted"] in CLASSES


def test_regression_api_and_per_frame_csvs(regressor_ckpt: Path, folder: Path, tmp_path: Path) -> None:
    recognizer = EmotionRecognizer.from_checkpoint(regressor_ckpt, device="cpu")
    records = recognizer.predict(folder)
    good = [r for r in records if r.ok]
    assert len(good) == 3 and len(records) == 5
    for r in good:
        samples = sf.info(r.path).frames
        assert r.frames.shape == (math.ceil(samples / 640), 2)
    written = recognizer.write(records, tmp_path / "out")
    with written[0].open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["utt_id", "path", "frames", "mean_arousal", "mean_valence", "frames_csv", "status",
                             "error"]  # fmt: skip
    row = next(r for r in rows if r["status"] == "ok")
    with (tmp_path / "out" / row["frames_csv"]).open() as handle:
        frames = list(csv.DictReader(handle))
    assert list(frames[0]) == ["frame", "start_s", "arousal", "valence"] and len(frames) == int(row["frames"])
    assert float(frames[1]["start_s"]) == pytest.approx(0.04)
    record = next(r for r in good if r.utt_id == row["utt_id"])
    assert np.mean([float(f["arousal"]) for f in frames]) == pytest.approx(float(row["mean_arousal"]), abs=1e-5)
    np.testing.assert_allclose([float(f["valence"]) for f in frames], record.frames[:, 1], atol=1e-6)
    data = json.loads(written[1].read_text())
    assert data["task"] == "regression" and data["target_names"] == ["arousal", "valence"]
    assert data["frame_rate_hz"] == 25.0


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_predict_command_writes_the_same_schemas(kind: str, request: pytest.FixtureRequest, folder: Path,
                                                 tmp_path: Path) -> None:  # fmt: skip
    """Lightning's predict loop (predict_step + PredictionWriter) writes what the API writes."""
    ckpt = request.getfixturevalue(f"{kind}_ckpt")
    model = SERTask.load_from_checkpoint(ckpt, map_location="cpu")
    files = sorted(p for p in folder.rglob("*.wav"))
    dataset = UtteranceDataset([Utterance(str(p), "x", "unknown", utt_id=p.stem) for p in files], ["x"], 16000)
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate_utterances)
    trainer = Trainer(logger=False, default_root_dir=str(tmp_path / "run"), callbacks=[PredictionWriter()],
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.predict(model, loader, return_predictions=False)
    api = EmotionRecognizer(model, device="cpu")
    api.write(api.predict(files), tmp_path / "api")
    for name in ("predictions.csv", "predictions.json"):
        assert (tmp_path / "run" / name).is_file(), name
    lightning = json.loads((tmp_path / "run" / "predictions.json").read_text())
    direct = json.loads((tmp_path / "api" / "predictions.json").read_text())
    assert {k: v for k, v in lightning.items() if k != "predictions"} == {
        k: v for k, v in direct.items() if k != "predictions"}  # fmt: skip
    by_id = {e["utt_id"]: e for e in direct["predictions"]}
    assert {e["utt_id"] for e in lightning["predictions"]} == set(by_id)
    for entry in lightning["predictions"]:
        other = by_id[entry["utt_id"]]
        assert entry["status"] == other["status"]
        if entry["status"] != "ok":
            continue
        if kind == "classifier":
            assert entry["predicted"] == other["predicted"]
            np.testing.assert_allclose(list(entry["posteriors"].values()), list(other["posteriors"].values()),
                                       atol=1e-5)  # fmt: skip
        else:
            assert entry["frames"] == other["frames"]
            assert (tmp_path / "run" / entry["frames_csv"]).is_file()


def test_timeline_shape_values_and_plot(classifier_ckpt: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    recognizer = EmotionRecognizer.from_checkpoint(classifier_ckpt, device="cpu", batch_size=4)
    wavs = sorted((tiny_corpus / "wav").rglob("*.wav"))[:3]
    pieces = [read_audio(w, 16000) for w in wavs]
    long = np.concatenate([pieces[0], np.zeros(40000, np.float32), *pieces[1:]])  # 2.5 s of silence inside
    path = tmp_path / "long.flac"
    sf.write(path, long, 16000)
    timeline = emotion_timeline(recognizer, path, window_s=1.5, hop_s=0.75)
    starts = segment_starts(long.shape[0], 24000, 12000)
    assert timeline.values.shape == (len(starts), 4)
    np.testing.assert_allclose(timeline.starts, np.array(starts) / 16000)
    assert timeline.ends[-1] == pytest.approx(long.shape[0] / 16000)
    silent = [i for i, s in enumerate(starts) if not np.any(long[s : s + 24000])]
    assert silent and not timeline.ok[silent].any() and timeline.ok.sum() == len(starts) - len(silent)
    i = int(np.flatnonzero(timeline.ok)[1])
    [alone] = recognizer.predict(long[starts[i] : starts[i] + 24000], sample_rate=16000)
    np.testing.assert_allclose(timeline.values[i], alone.posteriors, atol=1e-5)
    # the array path gives the same timeline (at another rate: resampled)
    again = emotion_timeline(recognizer, long, window_s=1.5, hop_s=0.75, sample_rate=16000)
    np.testing.assert_allclose(again.values, timeline.values, atol=1e-6)
    csv_path = timeline.write_csv(tmp_path / "t.csv")
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["start_s", "end_s", "predicted", *(f"p_{c}" for c in CLASSES), "status"]
    assert len(rows) == len(starts) and rows[silent[0]]["status"] == "error"
    png = timeline.plot(tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_timeline_and_infer_commands(classifier_ckpt: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmd"
    assert inference_main(["timeline", str(classifier_ckpt), str(folder / "sub"), "-o", str(out),
                           "--window", "1.0", "--hop", "0.5", "--device", "cpu"]) == 0  # fmt: skip
    [png] = out.glob("*.timeline.png")
    assert png.with_suffix(".csv").is_file()
    assert inference_main(["infer", str(classifier_ckpt), str(folder), "-o", str(out), "--formats", "json"]) == 0
    assert (out / "predictions.json").is_file() and not (out / "predictions.csv").exists()
    with pytest.raises(ValueError, match="window_s"):
        emotion_timeline(EmotionRecognizer.from_checkpoint(classifier_ckpt), folder, window_s=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_api_on_gpu_matches_cpu(classifier_ckpt: Path, regressor_ckpt: Path, folder: Path) -> None:
    for ckpt in (classifier_ckpt, regressor_ckpt):
        cpu = EmotionRecognizer.from_checkpoint(ckpt, device="cpu").predict(folder)
        gpu_api = EmotionRecognizer.from_checkpoint(ckpt, device="cuda")
        assert next(gpu_api.model.parameters()).is_cuda
        gpu = gpu_api.predict(folder)
        assert [r.status for r in gpu] == [r.status for r in cpu]
        for a, b in zip(cpu, gpu, strict=True):
            if a.ok:
                np.testing.assert_allclose(b.posteriors if b.frames is None else b.frames,
                                           a.posteriors if a.frames is None else a.frames, atol=1e-4)  # fmt: skip
