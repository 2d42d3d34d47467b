"""A zoo of broken and unusual audio files, written into a folder by :func:`write_zoo` (tests/test_bad_audio.py).

Every kind is listed in :data:`ZOO` with what the toolkit must do with it: ``loaded``, or skipped with the ``kind``
of :class:`~ser_lightning.errors.AudioReadError` it is counted under (``unreadable``, ``empty``, ``non_finite``,
``too_short``, ``silent``). Most files are written by soundfile; the odd headers (AppleDouble, extra RIFF chunks,
"streamed" WAV with 0xFFFFFFFF sizes, truncations) are written byte by byte with :mod:`struct`.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
SECONDS = 0.5

ZOO: dict[str, str] = {
    # file name -> expected outcome: "loaded", "quiet" (loaded, counted near-silent) or the skip kind
    "zero_bytes.wav": "unreadable",
    "truncated_header.wav": "unreadable",
    "truncated_data.wav": "loaded",  # header says 0.5 s, half the data is there: libsndfile reads what is there
    "text.wav": "unreadable",
    "._apple.wav": "unreadable",  # a macOS AppleDouble resource file named like the audio
    "zero_samples.wav": "empty",
    "short_50ms.wav": "too_short",
    "nan_float.wav": "non_finite",
    "inf_float.wav": "non_finite",
    "digital_silence.wav": "silent",
    "near_silence.wav": "quiet",  # peak -70 dBFS: quiet speech is valid
    "stereo_44k.wav": "loaded",
    "rate_8k.wav": "loaded",
    "ulaw.wav": "loaded",
    "pcm24.wav": "loaded",
    "pcm_u8.wav": "loaded",
    "float64.wav": "loaded",
    "lossless.flac": "loaded",
    "lossy.mp3": "loaded",
    "long_60s.wav": "loaded",
    "UPPER_CASE.WAV": "loaded",
    "riff_chunks.wav": "loaded",  # LIST/INFO and bext chunks before fmt and data
    "streamed.wav": "loaded",  # RIFF and data sizes 0xFFFFFFFF: libsndfile >= 1.0.x reads them
}
"""File name -> expected outcome."""

SKIPPED = {name: kind for name, kind in ZOO.items() if kind not in ("loaded", "quiet")}
"""The files that must be skipped -> the kind they are counted under."""


def speechlike(seconds: float = SECONDS, rate: int = RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A voiced-looking test signal (a 150 Hz harmonic buzz plus noise) at about -10 dBFS peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    x = 0.2 * buzz / 2.3 + 0.02 * rng.normal(size=t.size)
    x = np.clip(x, -0.9, 0.9)
    if channels > 1:
        x = np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return x.astype(np.float32)


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def _chunk(tag: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def _fmt_pcm16(rate: int = RATE, channels: int = 1) -> bytes:
    return _chunk(b"fmt ", struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16))


def wav_bytes(x: np.ndarray, rate: int = RATE, extra_chunks: bytes = b"") -> bytes:
    """A 16-bit mono PCM WAV file's bytes, with ``extra_chunks`` between the RIFF header and ``fmt ``."""
    body = b"WAVE" + extra_chunks + _fmt_pcm16(rate) + _chunk(b"data", _pcm16(x))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_zoo(folder: Path) -> dict[str, Path]:
    """Writes every kind of :data:`ZOO` into ``folder``.

    Args:
        folder: where to write (created if missing).

    Returns:
        File name -> path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: folder / name for name in ZOO}

    def sig(name: str, seconds: float = SECONDS, rate: int = RATE, channels: int = 1) -> np.ndarray:
        # a different noise per file: no two files are byte-identical (the split's duplicate check)
        return speechlike(seconds, rate, seed=zlib.crc32(name.encode()), channels=channels)

    good = sig("truncated")
    (out["zero_bytes.wav"]).write_bytes(b"")
    full = wav_bytes(good)
    out["truncated_header.wav"].write_bytes(full[:20])
    data_at = full.index(b"data") + 8
    out["truncated_data.wav"].write_bytes(full[: data_at + (len(full) - data_at) // 2])
    out["text.wav"].write_text("this is not audio, only a text file named .wav\n")
    # AppleDouble: magic 0x00051607, version 0x00020000, 16 filler bytes, 0 entries.
    out["._apple.wav"].write_bytes(struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 0) + b"\0" * 64)
    sf.write(out["zero_samples.wav"], np.zeros(0, dtype=np.float32), RATE, subtype="PCM_16")
    sf.write(out["short_50ms.wav"], sig("short", 0.05), RATE, subtype="PCM_16")
    nan = sig("nan")
    nan[100:110] = np.nan
    sf.write(out["nan_float.wav"], nan, RATE, subtype="FLOAT")
    inf = sig("inf")
    inf[200] = np.inf
    sf.write(out["inf_float.wav"], inf, RATE, subtype="FLOAT")
    sf.write(out["digital_silence.wav"], np.zeros_like(good), RATE, subtype="PCM_16")
    quiet = sig("near_silence.wav")
    sf.write(out["near_silence.wav"], quiet / np.abs(quiet).max() * 10 ** (-70 / 20), RATE, subtype="FLOAT")
    sf.write(out["stereo_44k.wav"], sig("stereo", rate=44100, channels=2), 44100, subtype="PCM_16")
    sf.write(out["rate_8k.wav"], sig("8k", rate=8000), 8000, subtype="PCM_16")
    sf.write(out["ulaw.wav"], sig("ulaw.wav"), RATE, subtype="ULAW")
    sf.write(out["pcm24.wav"], sig("pcm24.wav"), RATE, subtype="PCM_24")
    sf.write(out["pcm_u8.wav"], sig("pcm_u8.wav"), RATE, subtype="PCM_U8")
    sf.write(out["float64.wav"], sig("float64.wav").astype(np.float64), RATE, subtype="DOUBLE")
    sf.write(out["lossless.flac"], sig("lossless.flac"), RATE, format="FLAC", subtype="PCM_16")
    sf.write(out["lossy.mp3"], sig("mp3", 1.0), RATE, format="MP3")
    sf.write(out["long_60s.wav"], sig("long", 60.0, rate=8000), 8000, subtype="PCM_16")
    sf.write(out["UPPER_CASE.WAV"], sig("UPPER_CASE.WAV"), RATE, subtype="PCM_16")
    info = _chunk(b"LIST", b"INFO" + _chunk(b"INAM", b"zoo\0") + _chunk(b"ICMT", b"extra chunks\0"))
    bext = _chunk(b"bext", b"zoo description".ljust(256, b"\0") + b"\0" * 346)
    out["riff_chunks.wav"].write_bytes(wav_bytes(sig("riff_chunks.wav"), extra_chunks=info + bext))
    streamed = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + _fmt_pcm16() + b"data"
    out["streamed.wav"].write_bytes(streamed + struct.pack("<I", 0xFFFFFFFF) + _pcm16(sig("streamed.wav")))
    return out
