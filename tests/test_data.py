from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.audio import read_audio
from ser_lightning.data import ManifestDataModule, SyntheticDataModule
from ser_lightning.data.base import SERDataModule
from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.dataset import UtteranceDataset, collate_utterances
from ser_lightning.data.manifest import ParseReport, Utterance, read_manifest_csv
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ManifestError


def write(path: Path, audio: np.ndarray, rate: int) -> Path:
    sf.write(path, audio, rate)
    return path


def test_read_audio_mixes_to_mono_and_resamples(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32) * 0.5
    audio = read_audio(str(write(tmp_path / "a.wav", stereo, 48000)), 16000)
    assert audio.dtype == np.float32 and audio.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) <= 1  # the tone survives resampling
    assert np.max(np.abs(audio[1000:-1000])) == pytest.approx(0.25, abs=0.01)  # mean of the two channels


@pytest.mark.parametrize("content", [b"", b"RIFF....not a wav at all"])
def test_read_audio_names_the_bad_file(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    with pytest.raises(AudioReadError, match="broken.wav"):
        read_audio(str(bad), 16000)


def test_read_audio_rejects_empty_and_nan(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioReadError, match="empty.wav: the audio file is empty"):
        read_audio(str(empty), 16000)
    nan = np.ones(100, dtype=np.float32)
    nan[5] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="NaN"):
        read_audio(str(tmp_path / "nan.wav"), 16000)


def test_training_crop_and_collate(tmp_path: Path) -> None:
    records = [
        Utterance(
            str(write(tmp_path / f"{i}.wav", np.random.default_rng(i).normal(size=n).astype(np.float32) * 0.1, 16000)),
            label,
            f"s{i}",
        )
        for i, (n, label) in enumerate([(32000, "a"), (8000, "b")])
    ]
    train = UtteranceDataset(records, ["a", "b"], 16000, segment_samples=16000)
    item = train[0]
    assert item["length"] == 16000 and item["label"] == 0
    assert train[1]["length"] == 8000  # shorter utterances are left whole (the model pads)
    batch = collate_utterances([train[0], train[1]])
    assert batch["waveform"].shape == (2, 16000)
    assert batch["length"].tolist() == [16000, 8000]
    assert torch.all(batch["waveform"][1, 8000:] == 0)
    whole = UtteranceDataset(records, ["a", "b"], 16000)
    assert whole[0]["length"] == 32000
    with pytest.raises(ValueError, match="not among the class names"):
        UtteranceDataset(records, ["a"], 16000)


def make_manifest(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_errors_name_file_and_line(tmp_path: Path) -> None:
    path = make_manifest(tmp_path, [{"path": "a.wav", "label": "x", "speaker": "s1"},
                                    {"path": "b.wav", "label": "", "speaker": "s1"}])  # fmt: skip
    with pytest.raises(ManifestError, match=r"manifest.csv:3"):
        read_manifest_csv(path)
    no_speaker = tmp_path / "m2.csv"
    no_speaker.write_text("path,label\na.wav,x\n")
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest_csv(no_speaker)
    with pytest.raises(CorpusNotFoundError, match="does-not-exist.csv"):
        ManifestDataModule(manifest=str(tmp_path / "does-not-exist.csv"))


def test_manifest_datamodule_end_to_end(tmp_path: Path) -> None:
    rows = []
    for s in range(4):
        for label in ("calm", "angry", "other"):
            noise = np.random.default_rng(len(rows)).normal(size=4000).astype(np.float32) * 0.1
            wav = write(tmp_path / f"{s}_{label}.wav", noise, 8000)
            rows.append({"path": wav.name, "label": label, "speaker": f"spk{s}", "duration": "0.5", "gender": "f"})
    path = make_manifest(tmp_path, rows)
    data = ManifestDataModule(manifest=str(path), classes=["calm", "angry"], protocol="loso", fold=2,
                              batch_size=2)  # fmt: skip
    assert data.num_classes == 2
    data.setup("fit")
    assert {r.label for r in data.split.train} == {"calm", "angry"}  # "other" dropped
    assert data.split.stamp["test_speakers"] == ["spk2"] and data.split.stamp["val_speakers"] == ["spk3"]
    batch = next(iter(data.val_dataloader()))
    assert batch["waveform"].shape == (2, 8000)  # resampled 8 kHz -> 16 kHz
    assert data.split.train[0].extra["gender"] == "f"
    auto = ManifestDataModule(manifest=str(path))
    assert auto.class_names == ["angry", "calm", "other"]


def test_duplicated_recording_under_another_speaker_is_leakage(tmp_path: Path) -> None:
    from ser_lightning.errors import LeakageError

    rows = []
    for s in range(4):
        for label in ("calm", "angry"):
            noise = np.random.default_rng(len(rows)).normal(size=4000).astype(np.float32) * 0.1
            rows.append({"path": write(tmp_path / f"{s}_{label}.wav", noise, 8000).name, "label": label,
                         "speaker": f"spk{s}"})  # fmt: skip
    (tmp_path / "copy.wav").write_bytes((tmp_path / "0_calm.wav").read_bytes())  # released twice, renamed
    rows.append({"path": "copy.wav", "label": "calm", "speaker": "spk1"})
    data = ManifestDataModule(manifest=str(make_manifest(tmp_path, rows)), protocol="loso", fold=0)
    with pytest.raises(LeakageError, match=r"same recording .*0_calm.wav.*copy.wav|copy.wav.*0_calm.wav"):
        data.setup("fit")


def test_unreadable_audio_is_skipped_named_and_counted_or_fails_when_strict(tmp_path: Path) -> None:
    rows = []
    for s in range(3):
        for label in ("calm", "angry"):
            noise = np.random.default_rng(len(rows)).normal(size=4000).astype(np.float32) * 0.1
            rows.append({"path": write(tmp_path / f"{s}_{label}.wav", noise, 8000).name, "label": label,
                         "speaker": f"spk{s}"})  # fmt: skip
    (tmp_path / "1_angry.wav").write_bytes(b"garbage")
    write(tmp_path / "2_calm.wav", np.zeros(0, dtype=np.float32), 8000)
    path = make_manifest(tmp_path, rows)
    data = ManifestDataModule(manifest=str(path), protocol="loso", fold=0)
    data.setup("fit")
    stamp = data.describe()
    assert stamp["skipped"]["count"] == 2
    reasons = {Path(f["path"]).name: f["reason"] for f in stamp["skipped"]["files"]}
    assert "cannot read audio" in reasons["1_angry.wav"] and "empty" in reasons["2_calm.wav"]
    assert sum(stamp["sizes"].values()) == 4
    strict = ManifestDataModule(manifest=str(path), protocol="loso", fold=0, strict=True)
    with pytest.raises(AudioReadError, match="1_angry.wav"):
        strict.setup("fit")


def test_synthetic_datamodule_tiny(tiny_corpus: Path) -> None:
    data = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=4, segment_seconds=1.0)
    assert data.class_names == ["neutral", "happy", "angry", "sad"]
    data.prepare_data()
    data.setup("fit")
    stamp = data.describe()
    assert stamp["speaker_independent"] is True and stamp["corpus"] == "synthetic"
    assert not set(stamp["test_speakers"]) & set(stamp["val_speakers"])
    train = next(iter(data.train_dataloader()))
    assert train["waveform"].shape[1] <= 16000  # training crops
    val = next(iter(data.val_dataloader()))
    assert val["waveform"].shape[1] > 16000  # evaluation sees whole utterances
    durations = [r.duration for r in data.split.val]
    first = [data.split.val[i].duration for i in val["index"].tolist()]
    assert first == sorted(durations)[: len(first)]  # evaluation batches ordered by duration
    with pytest.raises(ValueError, match="unknown emotion"):
        SyntheticDataModule(emotions=["neutral", "bored"])


def all_subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *all_subclasses(sub))]


def parse_tiny_corpus(root: Path, *, prefix: str = "", report: ParseReport | None = None) -> list[Utterance]:
    """A minimal native-layout parser: ``<speaker>_<label>_<n>.wav`` files in one folder."""
    report = report or ParseReport()
    records = []
    for path in sorted(root.glob("*.wav")):
        parts = path.stem.split("_")
        if len(parts) != 3:
            report.skip(path, "not <speaker>_<label>_<n>.wav")
            continue
        speaker, label, _ = parts
        records.append(Utterance(str(path), f"{prefix}{label}", speaker, corpus="tiny", utt_id=path.stem))
    return records


class TinyCorpusDataModule(CorpusDataModule):
    """A minimal new corpus: one own argument, a parser, nothing else.

    Args:
        prefix: prepended to every label.
    """

    corpus_name = "tiny"
    manifest_args = ("prefix",)

    def __init__(self, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix

    @property
    def class_names(self) -> list[str]:
        """The two labels."""
        return [f"{self.prefix}calm", f"{self.prefix}loud"]

    def load_records(self) -> list[Utterance]:
        """Parses the folder."""
        return parse_tiny_corpus(self.require_root("<speaker>_<label>_<n>.wav"), prefix=self.prefix,
                                 report=self.parse_report())  # fmt: skip


def test_a_new_corpus_datamodule_needs_nothing_but_its_own_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ser_lightning.cli import main

    rng = np.random.default_rng(0)
    for speaker in ("s1", "s2", "s3", "s4"):
        for label, gain in (("calm", 0.1), ("loud", 0.5)):
            for n in range(2):
                write(tmp_path / f"{speaker}_{label}_{n}.wav", rng.normal(0, gain, 4000).astype(np.float32), 16000)
    write(tmp_path / "stray.wav", np.zeros(400, dtype=np.float32), 16000)
    report = ParseReport()
    assert len(parse_tiny_corpus(tmp_path, report=report)) == 16  # the parser alone, without Lightning
    assert [Path(s["path"]).name for s in report.skipped] == ["stray.wav"]

    data = TinyCorpusDataModule(prefix="x_", root=str(tmp_path), batch_size=2, fold=1, cache_manifest=False)
    data.setup("fit")
    assert data.fold == 1 and data.batch_size == 2 and data.num_classes == 2
    assert data.describe()["test_speakers"] == ["s2"] and len(data.skipped) == 1
    assert next(iter(data.train_dataloader()))["waveform"].shape[0] == 2
    with pytest.raises(TypeError, match="bach_size"):
        TinyCorpusDataModule(bach_size=2)

    path = f"{__name__}.TinyCorpusDataModule"
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--data.help", path])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    for name in ("prefix", "root", "batch_size", "eval_batch_size", "fold", "protocol", "group_by", "augmentation",
                 "vad_mode", "strict", "cache_manifest"):  # fmt: skip
        assert f"--data.{name} " in shown, f"--help does not show the inherited argument {name}"
    assert "prepended to every label" in shown and "which fold of the protocol" in shown  # docstrings reach --help
    main_config = str(Path(__file__).resolve().parents[1] / "configs" / "dense_highway.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", main_config, "--data", path, "--data.init_args.root", str(tmp_path),
              "--data.init_args.bach_size", "2", "--print_config"])  # fmt: skip
    assert exit_.value.code != 0
    assert "bach_size" in capsys.readouterr().err


def test_every_shipped_datamodule_declares_only_its_own_arguments_and_forwards_by_keyword() -> None:
    import ast
    import inspect
    import textwrap

    import ser_lightning.data  # noqa: F401  (registers the corpus modules)

    subclasses = [c for c in all_subclasses(SERDataModule) if c.__module__.startswith("ser_lightning.")]
    assert {c.__name__ for c in subclasses} >= {"CorpusDataModule", "CrossCorpusDataModule", "EMODBDataModule"}
    for cls in subclasses:
        if "__init__" not in vars(cls):
            continue
        own = inspect.signature(cls.__init__).parameters
        assert any(p.kind == p.VAR_KEYWORD for p in own.values()), f"{cls.__name__} does not forward **kwargs"
        names = {n for n, p in own.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        for parent in cls.__mro__[1:]:
            if parent is SERDataModule.__mro__[1] or not issubclass(parent, SERDataModule):
                break
            if "__init__" in vars(parent):
                inherited = set(inspect.signature(parent.__init__).parameters) - {"self", "kwargs"}
                assert not names & inherited, f"{cls.__name__} re-declares {names & inherited} of {parent.__name__}"
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr == "__init__"]  # fmt: skip
        assert len(calls) == 1, cls.__name__
        assert not calls[0].args, f"{cls.__name__} forwards positionally"
        assert [k.arg for k in calls[0].keywords] == [None], f"{cls.__name__} forwards other than **kwargs"


def test_cross_corpus_does_not_accept_the_arguments_of_a_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    from ser_lightning.cli import main
    from ser_lightning.data import CrossCorpusDataModule

    source = SyntheticDataModule(size="tiny")
    target = SyntheticDataModule(size="tiny", voice_set="de")
    refused = {"fold": 3, "protocol": "kfold", "num_folds": 3, "group_by": "speaker", "speaker_dependent": True,
               "holdout_fractions": (0.5, 0.25, 0.25), "root": "x"}  # fmt: skip
    for name, value in refused.items():
        with pytest.raises(TypeError, match=name):
            CrossCorpusDataModule(source=source, target=target, **{name: value})
    configs = Path(__file__).resolve().parents[1] / "configs"
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(configs / "dense_highway.yaml"),
              "--data", str(configs / "data" / "cross_corpus_synthetic.yaml"),
              "--data.init_args.fold", "3", "--print_config"])  # fmt: skip
    assert exit_.value.code != 0
    assert "'fold'" in capsys.readouterr().err


def test_manifest_cache_is_reused_and_invalidated_by_a_changed_file(
    tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    first = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny")
    records = first.records()
    assert records and all(r.checksum for r in records)

    def boom(self: SyntheticDataModule) -> list[Utterance]:
        raise AssertionError("parsed again although nothing changed")

    monkeypatch.setattr(SyntheticDataModule, "load_records", boom)
    assert SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny").records() == records
    wav = Path(records[0].path)
    stat = wav.stat()
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        with pytest.raises(AssertionError, match="parsed again"):
            SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny").records()
    finally:
        os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    uncached = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", cache_manifest=False)
    with pytest.raises(AssertionError, match="parsed again"):
        uncached.records()


def write_avi(path: Path, audio: np.ndarray, rate: int) -> Path:
    """An .avi with one PCM audio track, as eNTERFACE ships (video track omitted)."""
    import av

    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def test_read_audio_decodes_the_audio_track_of_a_video_container(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    avi = write_avi(tmp_path / "s1_an_1.avi", tone, 48000)
    audio = read_audio(str(avi), 16000)
    assert audio.shape == (16000,)
    assert np.argmax(np.abs(np.fft.rfft(audio))) == pytest.approx(300, abs=1)
    (tmp_path / "broken.avi").write_bytes(b"RIFF0000AVI junk")
    with pytest.raises(AudioReadError, match="broken.avi"):
        read_audio(str(tmp_path / "broken.avi"), 16000)


def speaker_rows(tmp_path: Path, speakers: list[str]) -> list[dict[str, str]]:
    rows = []
    for s, speaker in enumerate(speakers):
        for label in ("calm", "angry"):
            noise = np.random.default_rng(len(rows)).normal(size=4000).astype(np.float32) * 0.1
            rows.append({"path": write(tmp_path / f"{s}_{label}.wav", noise, 8000).name, "label": label,
                         "speaker": speaker})  # fmt: skip
    return rows


@pytest.mark.parametrize("with_root", [True, False])
def test_editing_the_manifest_csv_changes_the_cached_split(tmp_path: Path, with_root: bool) -> None:
    root = {"root": str(tmp_path)} if with_root else {}
    rows = speaker_rows(tmp_path, ["spk1", "spk2", "spk3"])
    path = make_manifest(tmp_path, rows)
    first = ManifestDataModule(manifest=str(path), protocol="loso", fold=0, **root)
    first.setup("fit")
    key = first._fingerprint()
    assert first.describe()["test_speakers"] == ["spk1"]
    # the same audio files, only the speaker column edited: a stale cache would give the old split
    path = make_manifest(tmp_path, [{**r, "speaker": "spk9" if r["speaker"] == "spk1" else r["speaker"]} for r in rows])
    second = ManifestDataModule(manifest=str(path), protocol="loso", fold=0, **root)
    assert second._fingerprint() != key
    second.setup("fit")
    assert second.describe()["test_speakers"] == ["spk2"]
    assert sorted({r.speaker for r in second.records()}) == ["spk2", "spk3", "spk9"]
    # unchanged inputs hit the cache (the same key)
    third = ManifestDataModule(manifest=str(path), protocol="loso", fold=0, **root)
    assert third._fingerprint() == second._fingerprint()


def test_describe_carries_every_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch import seed_everything

    path = make_manifest(tmp_path, speaker_rows(tmp_path, ["spk1", "spk2", "spk3"]))
    data = ManifestDataModule(manifest=str(path), protocol="kfold", num_folds=3, seed=7)
    data.setup("fit")
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    assert data.describe()["seeds"] == {"seed_everything": None, "data_seed": 7}
    seed_everything(123)
    assert data.describe()["seeds"] == {"seed_everything": 123, "data_seed": 7}


def test_quiet_audio_is_kept_and_short_or_silent_audio_skipped_at_setup(tmp_path: Path) -> None:
    rows = speaker_rows(tmp_path, ["spk1", "spk2", "spk3"])
    write(tmp_path / "0_calm.wav", np.full(4000, 1e-4, dtype=np.float32), 8000)  # -80 dBFS: quiet, kept
    write(tmp_path / "1_calm.wav", np.zeros(4000, dtype=np.float32), 8000)  # digital silence
    write(tmp_path / "2_calm.wav", np.full(400, 0.1, dtype=np.float32), 8000)  # 50 ms
    data = ManifestDataModule(manifest=str(make_manifest(tmp_path, rows)), protocol="kfold", num_folds=3)
    data.setup("fit")
    stamp = data.describe()
    assert {Path(f["path"]).name: f["kind"] for f in stamp["skipped"]["files"]} == {"1_calm.wav": "silent",
                                                                                   "2_calm.wav": "too_short"}
    assert [Path(f["path"]).name for f in stamp["quiet"]["files"]] == ["0_calm.wav"]
    assert stamp["audio_checks"]["min_seconds"] == 0.1
    cached = ManifestDataModule(manifest=str(make_manifest(tmp_path, rows)), protocol="kfold", num_folds=3)
    cached.setup("fit")  # from the manifest cache: the same verdicts
    assert cached.describe()["skipped"] == stamp["skipped"] and cached.describe()["quiet"] == stamp["quiet"]
    lenient = ManifestDataModule(manifest=str(make_manifest(tmp_path, rows)), protocol="kfold", num_folds=3,
                                 min_seconds=0.01)  # fmt: skip
    lenient.setup("fit")
    assert [Path(f["path"]).name for f in lenient.describe()["skipped"]["files"]] == ["1_calm.wav"]


def test_an_unknown_sentence_matches_no_sentence() -> None:
    from ser_lightning.data.splits import make_split

    records = [Utterance(f"/x/{s}_{i}.wav", "calm" if i % 2 else "angry", s, sentence="" if i < 2 else f"t{i}",
                         checksum=f"{s}{i}") for s in ("a", "b", "c") for i in range(4)]  # fmt: skip
    split = make_split(records, protocol="loso", fold=0)
    assert split.stamp["shared_sentences"] is True  # t2, t3 are in train and test
    unknown_only = [r if not r.sentence else replace(r, sentence=f"{r.speaker}-{r.sentence}") for r in records]
    split = make_split(unknown_only, protocol="loso", fold=0)
    assert split.stamp["shared_sentences"] is False  # only unknown sentences in common: not shared
    assert split.stamp["unknown_sentence"] == 6
