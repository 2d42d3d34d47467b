"""Signal processing of the synthetic corpus: silence trimming, output level, recording noise floor, 16-bit WAV.

:mod:`ser_lightning.synth.render` applies, to every utterance eSpeak renders: :func:`trim_silence` (at eSpeak's
native rate), resampling to :data:`~ser_lightning.synth.plan.SAMPLE_RATE` (the toolkit's one resampler,
:func:`ser_lightning.audio.resample`), :func:`to_pcm16` (level, noise floor, quantisation) and :func:`wav_bytes`.
Changing anything here changes the generated audio: bump ``GENERATOR_VERSION`` in
:mod:`ser_lightning.synth.plan` when you do.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ser_lightning.synth.plan import SAMPLE_RATE, CorpusGenerationError

__all__ = ["noise_floor", "to_pcm16", "trim_silence", "wav_bytes"]

# Peak level (linear) of a neutral utterance of a speaker recorded at 0 dB gain; emotion and speaker levels are
# applied on top, and peaks are capped at _MAX_PEAK.
_REFERENCE_PEAK = 0.25
_MAX_PEAK = 0.95
# Silence trimming: frames more than _TRIM_TOP_DB below the loudest frame are silence; keep _KEEP_SILENCE s.
_TRIM_TOP_DB = 45.0
_KEEP_SILENCE = 0.1


def trim_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Trim leading/trailing silence to ``_KEEP_SILENCE`` seconds on each side (padding if there is less).

    Args:
        audio: Mono waveform.
        sample_rate: Its sample rate (Hz); frames are 20 ms long.

    Returns:
        The trimmed (or padded) waveform, of the same dtype; ``audio`` itself when it is too short or silent.
    """
    frame = max(1, int(0.02 * sample_rate))
    n_frames = len(audio) // frame
    if n_frames < 2:
        return audio
    energy = np.sqrt(np.mean(audio[: n_frames * frame].astype(np.float64).reshape(n_frames, frame) ** 2, axis=1))
    peak = float(energy.max())
    if peak <= 0.0:
        return audio
    active = np.flatnonzero(energy > peak * 10.0 ** (-_TRIM_TOP_DB / 20.0))
    keep = int(_KEEP_SILENCE * sample_rate)
    onset, offset = int(active[0]) * frame, (int(active[-1]) + 1) * frame
    start, end = max(0, onset - keep), min(len(audio), offset + keep)
    # pad with silence where the synthesiser left less than `keep` samples around the speech
    return np.concatenate(
        [np.zeros(keep - (onset - start), audio.dtype), audio[start:end], np.zeros(keep - (end - offset), audio.dtype)]
    )


def noise_floor(n_samples: int, level_db: float, seed: int) -> np.ndarray:
    """Recording noise floor: Gaussian hiss with a mild low-frequency tilt, RMS ``level_db`` dBFS.

    Args:
        n_samples: Length of the noise.
        level_db: RMS level, in dB re full scale.
        seed: Seed of the noise.

    Returns:
        The noise, float32.
    """
    white = np.random.default_rng(seed).standard_normal(n_samples + 1, dtype=np.float32)
    noise = white[1:] + np.float32(0.7) * white[:-1]
    return noise * np.float32(10.0 ** (level_db / 20.0) / math.sqrt(1.0 + 0.7**2))


def to_pcm16(audio: np.ndarray, level_db: float, noise_floor_db: float, noise_seed: int) -> np.ndarray:
    """Peak-normalise to the utterance level (capped to avoid clipping), add the noise floor, quantise to int16.

    Args:
        audio: Mono float waveform.
        level_db: Output level relative to the reference peak, in dB.
        noise_floor_db: RMS level of the noise floor, in dB re full scale.
        noise_seed: Seed of the noise floor.

    Returns:
        The int16 samples.

    Raises:
        CorpusGenerationError: If ``audio`` is silent.
    """
    peak = float(np.max(np.abs(audio)))
    if peak <= 0.0:
        raise CorpusGenerationError("silent utterance")
    target = min(_MAX_PEAK, _REFERENCE_PEAK * 10.0 ** (level_db / 20.0))
    scaled = audio * (target / peak) + noise_floor(len(audio), noise_floor_db, noise_seed)
    return np.clip(np.round(scaled * 32767.0), -32768, 32767).astype(np.int16)


def wav_bytes(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode int16 samples as a mono 16-bit PCM WAV file.

    Args:
        pcm: The int16 samples.
        sample_rate: Their sample rate (Hz).

    Returns:
        The bytes of the file.
    """
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
