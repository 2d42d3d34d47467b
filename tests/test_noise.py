"""Tests of ser_lightning.augment.noise: SNR mixing, procedural and folder noise banks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_lightning.augment import FolderNoiseBank, ProceduralNoiseBank, achieved_snr, mix_at_snr

SR = 16000


def _speech(n: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (envelope * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _spectral_slope(x: np.ndarray, lo: float = 50.0, hi: float = 4000.0) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), d=1.0 / SR)
    keep = (freqs >= lo) & (freqs <= hi)
    return float(np.polyfit(np.log10(freqs[keep]), np.log10(power[keep]), 1)[0])


def _band_power(x: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), d=1.0 / SR)
    return float(power[(freqs >= lo) & (freqs < hi)].sum())


# --- mix_at_snr -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
@pytest.mark.parametrize("noise_len", [SR // 3, SR, 3 * SR])  # tiling, equal, crop
def test_mix_at_snr_exact(snr: float, noise_len: int) -> None:
    speech = _speech()
    noise = np.random.default_rng(1).standard_normal(noise_len).astype(np.float32)
    noisy = mix_at_snr(speech, noise, snr, np.random.default_rng(2))
    assert noisy.dtype == np.float32
    assert noisy.shape == speech.shape
    assert abs(achieved_snr(speech, noisy) - snr) < 0.1


def test_mix_at_snr_crop_and_tile_take_noise_content() -> None:
    speech = _speech(1000)
    long_noise = np.random.default_rng(3).standard_normal(5000)
    residual = mix_at_snr(speech, long_noise, 0.0, np.random.default_rng(0)).astype(np.float64) - speech
    # crop: the residual is a scaled contiguous segment of the noise
    corr = [abs(np.corrcoef(residual, long_noise[s : s + 1000])[0, 1]) for s in range(4001)]
    assert max(corr) > 0.999
    short_noise = np.random.default_rng(4).standard_normal(300)
    residual = mix_at_snr(speech, short_noise, 0.0, np.random.default_rng(0)).astype(np.float64) - speech
    # tiling: the residual repeats with the noise's period
    np.testing.assert_allclose(residual[:300], residual[300:600], atol=1e-5)


def test_mix_at_snr_deterministic() -> None:
    speech, noise = _speech(), np.random.default_rng(5).standard_normal(4 * SR)
    a = mix_at_snr(speech, noise, 5.0, np.random.default_rng(7))
    b = mix_at_snr(speech, noise, 5.0, np.random.default_rng(7))
    c = mix_at_snr(speech, noise, 5.0, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("speech", "noise", "snr", "match"),
    [
        (np.zeros(100), np.ones(100), 0.0, "speech is silent"),
        (np.ones(100), np.zeros(100), 0.0, "noise is silent"),
        (np.array([]), np.ones(100), 0.0, "speech is empty"),
        (np.ones(100), np.array([]), 0.0, "noise is empty"),
        (np.ones((2, 100)), np.ones(100), 0.0, "1-D"),
        (np.ones(100), np.ones((100, 2)), 0.0, "1-D"),
        (np.ones(100), np.ones(100), float("inf"), "finite"),
        (np.ones(100), np.ones(100), float("nan"), "finite"),
        (np.full(100, np.nan), np.ones(100), 0.0, "NaN"),
    ],
)
def test_mix_at_snr_errors(speech: np.ndarray, noise: np.ndarray, snr: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        mix_at_snr(speech, noise, snr, np.random.default_rng(0))


def test_mix_at_snr_silent_segment() -> None:
    noise = np.concatenate([np.zeros(1000), np.ones(10)])
    with pytest.raises(ValueError, match="segment"):
        mix_at_snr(np.ones(10), noise, 0.0, np.random.default_rng(0))


# --- procedural bank --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_slopes(category: str, slope: float) -> None:
    bank = ProceduralNoiseBank()
    x = bank.sample(category, 2 * SR, SR, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == (2 * SR,)
    assert abs(_spectral_slope(x) - slope) < 0.3


def test_procedural_deterministic_and_categories() -> None:
    bank = ProceduralNoiseBank()
    assert bank.categories == ["white", "pink", "brown", "babble", "traffic"]
    for category in ("white", "pink", "brown", "traffic"):
        a = bank.sample(category, SR, SR, np.random.default_rng(1))
        b = bank.sample(category, SR, SR, np.random.default_rng(1))
        c = bank.sample(category, SR, SR, np.random.default_rng(2))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        assert np.isfinite(a).all()
    with pytest.raises(ValueError, match="unknown noise category"):
        bank.sample("rain", SR, SR, np.random.default_rng(0))


def test_traffic_is_low_frequency() -> None:
    x = ProceduralNoiseBank().sample("traffic", 4 * SR, SR, np.random.default_rng(0))
    assert _band_power(x, 0, 300) > 0.95 * _band_power(x, 0, SR / 2)


def test_babble(tiny_corpus: Path) -> None:
    bank = ProceduralNoiseBank(seed=0, babble_seconds=10.0, cache_dir=tiny_corpus.parent)
    x = bank.sample("babble", 3 * SR, SR, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == (3 * SR,)
    assert np.isfinite(x).all() and np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 0.01
    # speech-like, not white: the power above 4 kHz is a small part of the total
    assert _band_power(x, 4000, SR / 2) < 0.2 * _band_power(x, 0, 4000)
    assert _spectral_slope(x, 1000, 7000) < -1.0
    np.testing.assert_array_equal(x, bank.sample("babble", 3 * SR, SR, np.random.default_rng(0)))
    assert not np.array_equal(x, bank.sample("babble", 3 * SR, SR, np.random.default_rng(1)))
    # the same bank seed gives the same buffer in a new bank; another seed a different one
    again = ProceduralNoiseBank(seed=0, babble_seconds=10.0, cache_dir=tiny_corpus.parent)
    np.testing.assert_array_equal(x, again.sample("babble", 3 * SR, SR, np.random.default_rng(0)))
    other = ProceduralNoiseBank(seed=1, babble_seconds=10.0, cache_dir=tiny_corpus.parent)
    assert not np.array_equal(x, other.sample("babble", 3 * SR, SR, np.random.default_rng(0)))
    # usable with mix_at_snr
    noisy = mix_at_snr(_speech(2 * SR), x, 5.0, np.random.default_rng(0))
    assert abs(achieved_snr(_speech(2 * SR), noisy) - 5.0) < 0.1


# --- folder banks -----------------------------------------------------------------------------------------


def _write(path: Path, seconds: float = 0.5, rate: int = SR, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate)), rate)


def test_demand_layout(tmp_path: Path) -> None:
    for env in ("DKITCHEN", "NPARK", "STRAFFIC"):
        for ch in (1, 2):
            _write(tmp_path / env / f"ch{ch:02d}.wav", seed=ch)
    (tmp_path / "EMPTYENV").mkdir()
    bank = FolderNoiseBank(tmp_path, layout="demand")
    assert bank.categories == ["DKITCHEN", "NPARK", "STRAFFIC"]
    assert bank.files("NPARK") == [tmp_path / "NPARK" / "ch01.wav"]
    assert FolderNoiseBank(tmp_path, layout="demand", channel=2).files("NPARK") == [tmp_path / "NPARK" / "ch02.wav"]
    x = bank.sample("DKITCHEN", 2 * SR, SR, np.random.default_rng(0))  # longer than the file: tiled
    assert x.shape == (2 * SR,) and x.dtype == np.float32
    np.testing.assert_array_equal(x, bank.sample("DKITCHEN", 2 * SR, SR, np.random.default_rng(0)))
    assert bank.sample("DKITCHEN", 800, 8000, np.random.default_rng(0)).shape == (800,)  # resampled read
    with pytest.raises(FileNotFoundError, match="EMPTYENV"):
        bank.sample("EMPTYENV", 100, SR, np.random.default_rng(0))


def test_musan_layout(tmp_path: Path) -> None:
    _write(tmp_path / "noise" / "free-sound" / "noise-0001.wav")
    _write(tmp_path / "noise" / "sound-bible" / "noise-0002.flac")
    _write(tmp_path / "music" / "fma" / "music-0001.wav")
    (tmp_path / "speech").mkdir()
    (tmp_path / "noise" / "README").write_text("not audio")
    bank = FolderNoiseBank(tmp_path, layout="musan")
    assert bank.categories == ["music", "noise"]
    assert len(bank.files("noise")) == 2
    assert bank.sample("music", 1000, SR, np.random.default_rng(0)).shape == (1000,)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "speech")):
        bank.sample("speech", 100, SR, np.random.default_rng(0))


def test_folder_layout(tmp_path: Path) -> None:
    _write(tmp_path / "hum.wav")
    _write(tmp_path / "fan.flac")
    _write(tmp_path / "cafe" / "a.wav")
    _write(tmp_path / "cafe" / "deep" / "b.wav")
    bank = FolderNoiseBank(tmp_path)
    assert bank.categories == ["cafe", "noise"]
    assert len(bank.files("cafe")) == 2 and len(bank.files("noise")) == 2
    assert bank.sample("noise", 500, rng=np.random.default_rng(0)).shape == (500,)


def test_missing_root_and_empty(tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    for layout in ("demand", "musan", "folder"):
        with pytest.raises(FileNotFoundError, match="does-not-exist") as err:
            FolderNoiseBank(missing, layout=layout)
        assert "layout" in str(err.value)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no noise files found"):
        FolderNoiseBank(empty)
    _write(tmp_path / "musan" / "music" / "m.wav")
    with pytest.raises(FileNotFoundError, match="no noise files found"):
        FolderNoiseBank(tmp_path / "musan", layout="demand")


# --- disjoint train / eval parts --------------------------------------------------------------------------


def _windows(signals: list[np.ndarray], width: int = 8) -> set[bytes]:
    """Every run of ``width`` consecutive float32 samples, as bytes (a shared segment shares its windows)."""
    out: set[bytes] = set()
    for x in signals:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out.update(x[i : i + width].tobytes() for i in range(len(x) - width + 1))
    return out


@pytest.mark.parametrize("category", ["white", "pink", "brown", "traffic"])
def test_procedural_train_and_eval_parts_never_share_samples(category: str) -> None:
    train, evaluation = ProceduralNoiseBank(part="train"), ProceduralNoiseBank(part="eval")
    # The worst case: both parts driven by the very same caller generators.
    a = [train.sample(category, 4000, SR, np.random.default_rng(seed)) for seed in range(40)]
    b = [evaluation.sample(category, 4000, SR, np.random.default_rng(seed)) for seed in range(40)]
    assert not _windows(a) & _windows(b)
    # Each part is itself deterministic, and its seed space differs from the unsplit bank's.
    np.testing.assert_array_equal(a[0], train.sample(category, 4000, SR, np.random.default_rng(0)))
    whole = ProceduralNoiseBank().sample(category, 4000, SR, np.random.default_rng(0))
    assert not np.array_equal(whole, a[0]) and not np.array_equal(whole, b[0])


def test_babble_talkers_are_disjoint_from_each_other_and_from_every_corpus_speaker(tiny_corpus: Path) -> None:
    from ser_lightning.synth import VOICE_SETS, read_manifest

    bank = ProceduralNoiseBank(cache_dir=tiny_corpus.parent)
    train, evaluation = set(bank.babble_speakers("train")), set(bank.babble_speakers("eval"))
    assert train and evaluation and not train & evaluation
    assert train | evaluation == set(bank.babble_speakers("all"))
    en = VOICE_SETS["en"].speakers  # every speaker of every size of the en corpus (tiny, default, large)
    babble = [s for s in VOICE_SETS[bank.babble_voice_set].speakers if s.speaker_id in train | evaluation]
    assert len(babble) == len(train | evaluation)
    assert not {s.speaker_id for s in babble} & {s.speaker_id for s in en}
    assert not {s.voice for s in babble} & {s.voice for s in en}  # other language voices (de, not en-*)
    assert not {(s.voice, s.variant) for s in babble} & {(s.voice, s.variant) for s in en}
    # ... and none of them speaks in the embedded corpus the tests and the main job's fold use.
    assert not {row["speaker"] for row in read_manifest(tiny_corpus)} & (train | evaluation)
    # The two parts' babble buffers share no segment.
    a = bank.with_part("train").babble_buffer(SR)
    b = bank.with_part("eval").babble_buffer(SR)
    assert not _windows([a[::7]]) & _windows([b[::7]])  # (every 7th sample keeps the test fast)
    assert not _windows([a[: 2 * SR]]) & _windows([b])
    # No voice of any corpus voice set (en, and de: the cross-corpus test corpus) is in the babble either.
    assert bank.babble_voice_set == "babble"
    corpora = [s for name, vs in VOICE_SETS.items() if name != bank.babble_voice_set for s in vs.speakers]
    assert not {s.variant for s in babble} & {s.variant for s in corpora}
    assert not {s.voice for s in babble} & {s.voice for s in corpora}


def test_babble_talkers_of_a_part(tiny_corpus: Path) -> None:
    bank = ProceduralNoiseBank(part="train", babble_talkers=99, cache_dir=tiny_corpus.parent)
    with pytest.raises(ValueError, match="babble_talkers=99"):
        bank.sample("babble", 100, SR, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown noise part"):
        ProceduralNoiseBank(part="test")  # type: ignore[arg-type]


def _demand(root: Path, envs: list[str], channels: int = 16) -> None:
    for e, env in enumerate(envs):
        for ch in range(1, channels + 1):
            _write(root / env / f"ch{ch:02d}.wav", seconds=0.05, seed=100 * e + ch)


def test_demand_split_keeps_every_channel_of_an_environment_on_one_side(tmp_path: Path) -> None:
    envs = ["DKITCHEN", "DLIVING", "DWASHING", "NFIELD", "NPARK", "NRIVER", "OHALLWAY", "OMEETING", "OOFFICE",
            "PCAFETER", "PRESTO", "PSTATION", "SPSQUARE", "STRAFFIC", "TBUS", "TCAR", "TMETRO"]  # fmt: skip
    _demand(tmp_path, envs)
    whole = FolderNoiseBank(tmp_path, layout="demand")
    split = whole.split()
    assert sorted(split) == envs and set(split.values()) == {"train", "eval"}
    held_out = sorted(u for u, p in split.items() if p == "eval")
    assert 1 <= len(held_out) <= 8  # about 20 % of 17
    for channel in (1, 7, 16):
        train = FolderNoiseBank(tmp_path, layout="demand", channel=channel, part="train")
        evaluation = FolderNoiseBank(tmp_path, layout="demand", channel=channel, part="eval")
        assert evaluation.categories == held_out  # the same environments whatever the channel
        assert sorted(train.categories + evaluation.categories) == envs
        for env in envs:  # no recording (any of its 16 channels) on both sides
            assert not train.recordings(env) & evaluation.recordings(env)
        with pytest.raises(FileNotFoundError, match="other part"):
            train.files(held_out[0])
    assert FolderNoiseBank(tmp_path, layout="demand", split_seed=0).split() == split  # deterministic
    named = FolderNoiseBank(tmp_path, layout="demand", part="eval", eval_units=["DKITCHEN", "TCAR"])
    assert named.categories == ["DKITCHEN", "TCAR"]
    with pytest.raises(ValueError, match="not units"):
        FolderNoiseBank(tmp_path, layout="demand", eval_units=["NOPE"])


def test_folder_split_is_by_file_and_draws_never_cross(tmp_path: Path) -> None:
    for i in range(20):
        _write(tmp_path / "noise" / "free-sound" / f"noise-{i:04d}.wav", seconds=0.25, seed=i)
        _write(tmp_path / "music" / f"music-{i:04d}.wav", seconds=0.25, seed=1000 + i)
    _write(tmp_path / "speech" / "only-one.wav", seconds=0.25, seed=5000)
    train = FolderNoiseBank(tmp_path, layout="musan", part="train")
    evaluation = FolderNoiseBank(tmp_path, layout="musan", part="eval")
    assert train.categories == ["music", "noise", "speech"] and evaluation.categories == ["music", "noise"]
    for category in ("music", "noise"):
        a, b = set(train.files(category)), set(evaluation.files(category))
        assert not a & b and len(a | b) == 20 and 1 <= len(b) <= 8
        assert not train.recordings(category) & evaluation.recordings(category)
        drawn_a = [train.sample(category, 1000, SR, np.random.default_rng(s)) for s in range(30)]
        drawn_b = [evaluation.sample(category, 1000, SR, np.random.default_rng(s)) for s in range(30)]
        assert not _windows(drawn_a) & _windows(drawn_b)
    assert train.split() == evaluation.split() == FolderNoiseBank(tmp_path, layout="musan").split()
    assert "noise/free-sound/noise-0000.wav" in train.split()  # units are paths relative to the root
    everything = FolderNoiseBank(tmp_path, layout="musan", part="eval", eval_fraction=1.0)
    assert len(everything.files("noise")) == 20
    with pytest.raises(ValueError, match="eval_fraction"):
        FolderNoiseBank(tmp_path, layout="musan", eval_fraction=1.5)
