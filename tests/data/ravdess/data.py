"""Writes a tiny replica of RAVDESS (audio-only speech, plus the separate song folder) next to this script.

Native layout and names: ``Audio_Speech_Actors_01-24/Actor_XX/03-01-EE-II-SS-RR-AA.wav`` and
``Audio_Song_Actors_01-24/Actor_XX/03-02-EE-II-SS-RR-AA.wav``. Five actors (01, 03, 05 male; 02, 04 female), one
speech file per emotion each (neutral at normal intensity only, as in the corpus; statements and repetitions
alternate), and two song files, which live in their own folder and are not speech. The audio is 0.25 s of
8 kHz int16 noise-like signal seeded by the file name, so no two files are byte-identical (the real corpus is
48 kHz; the sample rate is not part of the layout).

Run ``python tests/data/ravdess/data.py``; it is deterministic.
"""

from __future__ import annotations

import logging
import shutil
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SPEECH = "Audio_Speech_Actors_01-24"
SONG = "Audio_Song_Actors_01-24"
RATE = 8000
SECONDS = 0.25
ACTORS = (1, 2, 3, 4, 5)
SONGS = ("03-02-03-01-01-01-01.wav", "03-02-06-02-02-01-02.wav")  # song has no calm/disgust/surprised

log = logging.getLogger("ravdess-replica")


def signal(name: str) -> np.ndarray:
    """A short voiced-like signal (a random pitch with harmonics plus noise), seeded by the file name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t = np.arange(round(RATE * SECONDS)) / RATE
    f0 = rng.uniform(90, 300)
    wave = sum(rng.uniform(0.1, 0.3) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) for k in (1, 2, 3))
    wave = wave + 0.02 * rng.standard_normal(t.size)
    return (np.clip(wave, -1, 1) * 32767).astype(np.int16)


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal(path.name), RATE, subtype="PCM_16")


def speech_names(actor: int) -> list[str]:
    names = []
    for k, emotion in enumerate(range(1, 9)):
        intensity = "01" if emotion == 1 or (actor + k) % 2 else "02"
        statement = f"{(actor + k) % 2 + 1:02d}"
        repetition = f"{k // 4 + 1:02d}"
        names.append(f"03-01-{emotion:02d}-{intensity}-{statement}-{repetition}-{actor:02d}.wav")
    return names


def main() -> None:
    for folder in (SPEECH, SONG):
        shutil.rmtree(HERE / folder, ignore_errors=True)
    for actor in ACTORS:
        for name in speech_names(actor):
            write(HERE / SPEECH / f"Actor_{actor:02d}" / name)
    for name in SONGS:
        write(HERE / SONG / f"Actor_{name[-6:-4]}" / name)
    total = sum(p.stat().st_size for p in HERE.rglob("*.wav"))
    log.info("wrote the RAVDESS replica under %s (%d bytes)", HERE, total)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
