"""Writes a tiny replica of RECOLA as released for AVEC 2016 next to this script.

    python tests/data/recola/data.py

Layout (the release's ``AVEC_2016`` folder)::

    recordings_audio/{train_1,train_2,dev_1,dev_2}.wav    3 s, 8 kHz mono int16
    recordings_audio/test_1.wav                           0.25 s; the test partition has no public ratings
    ratings_gold_standard/{arousal,valence}/<recording>.arff
    ratings_gold_standard/{arousal,valence}/dev_3.arff    ratings without a recording (skipped)

The ARFF files follow AVEC's gold standard (``@attribute Instance_name string``, ``frameTime``,
``GoldStandard``), one row every 40 ms from 0.00 to 3.00 s (76 rows: as in the release, the last row lies at the
end of the audio). The audio is noise whose level in 40 ms frame ``i`` is proportional to the arousal of row
``i``, so tests can check that waveform crops and target crops stay aligned.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
RATE = 8000
FRAME = RATE // 25  # 40 ms
SECONDS = 3.0
RECORDINGS = ("train_1", "train_2", "dev_1", "dev_2")


def ratings(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Arousal in [0.05, 0.6] and valence in [-0.5, 0.5], independent per frame, seeded."""
    rng = np.random.default_rng(1000 + seed)
    return np.round(rng.uniform(0.05, 0.6, rows), 6), np.round(rng.uniform(-0.5, 0.5, rows), 6)


def write_arff(path: Path, name: str, values: np.ndarray, dimension: str) -> None:
    """One gold-standard ARFF file as AVEC 2016 ships them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"@relation GOLDSTANDARD_{dimension}", "", "@attribute Instance_name string",
             "@attribute frameTime numeric", "@attribute GoldStandard numeric", "", "@data", ""]  # fmt: skip
    lines += [f"'{name}',{i * 0.04:.2f},{v:.6f}" for i, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Rewrites the replica's ``recordings_audio`` and ``ratings_gold_standard`` folders."""
    for old in ("recordings_audio", "ratings_gold_standard"):
        shutil.rmtree(HERE / old, ignore_errors=True)
    audio_dir = HERE / "recordings_audio"
    audio_dir.mkdir()
    frames = int(SECONDS * 25)
    for seed, name in enumerate((*RECORDINGS, "dev_3")):
        arousal, valence = ratings(seed, frames + 1)
        write_arff(HERE / "ratings_gold_standard" / "arousal" / f"{name}.arff", name, arousal, "AROUSAL")
        write_arff(HERE / "ratings_gold_standard" / "valence" / f"{name}.arff", name, valence, "VALENCE")
        if name == "dev_3":
            continue
        noise = np.random.default_rng(seed).standard_normal(frames * FRAME)
        noise /= np.sqrt(np.mean(noise.reshape(frames, FRAME) ** 2, axis=1)).repeat(FRAME)  # unit RMS per frame
        sf.write(audio_dir / f"{name}.wav", (0.25 * noise * arousal[:frames].repeat(FRAME)).clip(-1, 1), RATE,
                 subtype="PCM_16")  # fmt: skip
    test = 0.1 * np.random.default_rng(99).standard_normal(RATE // 4)
    sf.write(audio_dir / "test_1.wav", test, RATE, subtype="PCM_16")


if __name__ == "__main__":
    main()
