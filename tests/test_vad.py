"""Tests of ser_lightning.augment.vad: WebRTC voice-activity trimming and the DataModules' vad_mode."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_lightning.audio import read_audio, resample
from ser_lightning.augment import VoiceActivityTrimmer
from ser_lightning.data import SyntheticDataModule


@pytest.fixture(scope="module")
def utterance(tiny_corpus: Path) -> np.ndarray:
    """A synthetic utterance at 16 kHz, cut to its speech by the VAD itself (so its edges are speech)."""
    audio = read_audio(str(sorted((tiny_corpus).rglob("*.wav"))[0]), 16000)
    return VoiceActivityTrimmer(mode=2, padding_ms=0)(audio, 16000)


def _padded(speech: np.ndarray, rate: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    pad = np.zeros(rate, dtype=np.float32) if kind == "zeros" else (1e-4 * rng.standard_normal(rate)).astype(np.float32)
    return np.concatenate([pad, speech, pad[::-1]])


@pytest.mark.parametrize("kind", ["zeros", "low_noise"])
@pytest.mark.parametrize("rate", [16000, 22050])
def test_leading_and_trailing_silence_is_trimmed(utterance: np.ndarray, kind: str, rate: int) -> None:
    speech = utterance if rate == 16000 else resample(utterance, 16000, rate)
    padded = _padded(speech, rate, kind)
    trimmer = VoiceActivityTrimmer(mode=2, frame_ms=20, padding_ms=200)
    out = trimmer(padded, rate)
    assert out.dtype == np.float32
    # 1 s of silence on each side is cut down to the 200 ms padding (+- 100 ms of decision slack on each side).
    assert abs(len(out) - (len(speech) + 0.4 * rate)) <= 0.2 * rate
    offsets = [i for i in range(int(0.6 * rate), int(1.0 * rate) + 1) if np.array_equal(padded[i : i + len(out)], out)]
    assert len(offsets) == 1  # a contiguous cut of the original samples, starting ~200 ms before the speech
    assert np.array_equal(trimmer(padded, rate), out)  # deterministic


def test_all_silence_is_returned_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    silence = np.zeros(16000, dtype=np.float32)
    with caplog.at_level(logging.DEBUG, logger="ser_lightning.augment.vad"):
        out = VoiceActivityTrimmer(mode=3)(silence, 16000)
    assert np.array_equal(out, silence) and "no speech" in caplog.text
    short = np.zeros(100, dtype=np.float32)  # shorter than one frame
    assert np.array_equal(VoiceActivityTrimmer()(short, 16000), short)


def test_long_inner_pauses_are_shortened(utterance: np.ndarray) -> None:
    pause = np.zeros(16000, dtype=np.float32)
    joined = np.concatenate([utterance, pause, utterance])
    kept = VoiceActivityTrimmer(padding_ms=100)(joined, 16000)
    shortened = VoiceActivityTrimmer(padding_ms=100, max_pause_ms=300)(joined, 16000)
    assert len(kept) >= len(joined) - 0.05 * 16000
    assert abs((len(kept) - len(shortened)) - (16000 - 0.2 * 16000 - 0.3 * 16000)) <= 0.05 * 16000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"mode": 4}, "mode"), ({"frame_ms": 25}, "frame_ms"), ({"padding_ms": -1}, "padding_ms"),
     ({"max_pause_ms": -5}, "max_pause_ms")],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VoiceActivityTrimmer(**kwargs)


def test_vad_mode_trims_every_split_and_does_not_touch_torch_rng(tiny_corpus: Path) -> None:
    data = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=8, vad_mode=3)
    data.prepare_data()
    data.setup("fit")
    trimmer = VoiceActivityTrimmer(mode=3)
    shorter = 0
    for split, part in (("test", data.split.test), ("train", data.split.train[:8])):
        dataset = data.datasets[split]
        for index, record in enumerate(part):
            state = torch.random.get_rng_state()
            item = dataset[index]
            assert torch.equal(torch.random.get_rng_state(), state)
            original = read_audio(record.path, 16000)
            expected = trimmer(original, 16000)
            assert np.array_equal(item["waveform"].numpy(), expected), (split, record.utt_id)
            shorter += len(expected) < len(original)
    assert shorter >= 1  # some synthetic utterances have more than 200 ms of silence to trim
    assert data.describe()["vad_mode"] == 3 and data.hparams["vad_mode"] == 3
