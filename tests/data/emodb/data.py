"""Writes a tiny replica of EMO-DB (Berlin) next to this script.

Native layout and names: ``wav/<SS><TTT><E><V>.wav`` (e.g. ``03a01Fa.wav``). Five of the ten speakers (03, 10
male; 08, 13, 16 female), one utterance per emotion each with the text codes rotating through the corpus' ten,
and one second take (version ``b``) of an utterance, as the corpus has. The audio is 0.25 s of 8 kHz int16
noise-like signal seeded by the file name, so no two files are byte-identical (the real corpus is 16 kHz; the
sample rate is not part of the layout).

Run ``python tests/data/emodb/data.py``; it is deterministic.
"""

from __future__ import annotations

import logging
import shutil
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
RATE = 8000
SECONDS = 0.25
SPEAKERS = ("03", "08", "10", "13", "16")
EMOTIONS = "WLEAFTN"
TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
SECOND_TAKES = ("03a01Wb",)

log = logging.getLogger("emodb-replica")


def signal(name: str) -> np.ndarray:
    """A short voiced-like signal (a random pitch with harmonics plus noise), seeded by the file name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t = np.arange(round(RATE * SECONDS)) / RATE
    f0 = rng.uniform(90, 300)
    wave = sum(rng.uniform(0.1, 0.3) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) for k in (1, 2, 3))
    wave = wave + 0.02 * rng.standard_normal(t.size)
    return (np.clip(wave, -1, 1) * 32767).astype(np.int16)


def names() -> list[str]:
    out = []
    for s, speaker in enumerate(SPEAKERS):
        for e, emotion in enumerate(EMOTIONS):
            out.append(f"{speaker}{TEXTS[(s + e) % len(TEXTS)]}{emotion}a")
    return sorted(out + list(SECOND_TAKES))


def main() -> None:
    shutil.rmtree(HERE / "wav", ignore_errors=True)
    (HERE / "wav").mkdir()
    for stem in names():
        sf.write(HERE / "wav" / f"{stem}.wav", signal(stem), RATE, subtype="PCM_16")
    total = sum(p.stat().st_size for p in (HERE / "wav").iterdir())
    log.info("wrote the EMO-DB replica under %s (%d bytes)", HERE, total)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
