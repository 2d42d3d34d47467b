"""Writes a tiny replica of CREMA-D (``AudioWAV/`` and ``VideoDemographics.csv``) next to this script.

Native layout and names: ``AudioWAV/AAAA_SSS_EEE_LL.wav`` and ``VideoDemographics.csv`` (columns ActorID, Age,
Sex, Race, Ethnicity; strings quoted, numbers not, as released; the values here are invented). Six actors
(1001, 1006, 1040, 1064, 1076, 1091), one clip per emotion each; sentence IEO carries the levels LO/MD/HI, the
others XX. The release's irregularities are reproduced:

* ``1076_MTI_SAD_XX.wav``: full-length but without speech (here: digital silence), as in the release;
* ``1006_TIE_HAP_XX.wav`` and ``1006_TIE_NEU_XX.wav``: byte-identical clips under two labels;
* ``1040_ITH_SAD_X.wav``: the misspelt level of copies made before the authors renamed it;
* ``1091_WSI_SAD_XX.wav``: a zero-length clip (a WAV header without samples, as a broken copy leaves).

The audio is 0.25 s of 8 kHz int16 noise-like signal seeded by the file name, so no two files are
byte-identical except the pair above (the real corpus is 16 kHz; the sample rate is not part of the layout).

Run ``python tests/data/crema_d/data.py``; it is deterministic.
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
# actor -> (age, sex, race, ethnicity): invented values in the released format.
ACTORS = {
    1001: (34, "Male", "Caucasian", "Not Hispanic"),
    1006: (27, "Female", "African American", "Not Hispanic"),
    1040: (45, "Male", "Asian", "Not Hispanic"),
    1064: (52, "Male", "Caucasian", "Hispanic"),
    1076: (23, "Female", "Caucasian", "Not Hispanic"),
    1091: (30, "Female", "Unknown", "Not Hispanic"),
}
EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
IEO_LEVELS = ("LO", "MD", "HI")
# (actor, emotion) -> the clip's name where the replica pins it to a real irregularity.
PINNED = {
    (1006, "HAP"): "1006_TIE_HAP_XX",
    (1006, "NEU"): "1006_TIE_NEU_XX",
    (1040, "SAD"): "1040_ITH_SAD_X",
    (1076, "SAD"): "1076_MTI_SAD_XX",
    (1091, "SAD"): "1091_WSI_SAD_XX",
}
SILENT = "1076_MTI_SAD_XX"
EMPTY = "1091_WSI_SAD_XX"
COPY_OF = {"1006_TIE_NEU_XX": "1006_TIE_HAP_XX"}

log = logging.getLogger("crema-d-replica")


def signal(name: str) -> np.ndarray:
    """A short voiced-like signal (a random pitch with harmonics plus noise), seeded by the file name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t = np.arange(round(RATE * SECONDS)) / RATE
    f0 = rng.uniform(90, 300)
    wave = sum(rng.uniform(0.1, 0.3) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) for k in (1, 2, 3))
    wave = wave + 0.02 * rng.standard_normal(t.size)
    return (np.clip(wave, -1, 1) * 32767).astype(np.int16)


def clip_names() -> list[str]:
    names = []
    for a, actor in enumerate(ACTORS):
        for e, emotion in enumerate(EMOTIONS):
            if (actor, emotion) in PINNED:
                names.append(PINNED[actor, emotion])
                continue
            sentence = SENTENCES[(2 * a + e) % len(SENTENCES)]
            level = IEO_LEVELS[(a + e) % 3] if sentence == "IEO" else "XX"
            names.append(f"{actor}_{sentence}_{emotion}_{level}")
    return sorted(names)


def main() -> None:
    shutil.rmtree(HERE / "AudioWAV", ignore_errors=True)
    (HERE / "AudioWAV").mkdir()
    for name in clip_names():
        path = HERE / "AudioWAV" / f"{name}.wav"
        if name == EMPTY:
            audio = np.zeros(0, dtype=np.int16)
        elif name == SILENT:
            audio = np.zeros(round(RATE * SECONDS), dtype=np.int16)
        else:
            audio = signal(COPY_OF.get(name, name))
        sf.write(path, audio, RATE, subtype="PCM_16")
    lines = ['"ActorID","Age","Sex","Race","Ethnicity"']
    lines += [f'{actor},{age},"{sex}","{race}","{ethnicity}"' for actor, (age, sex, race, ethnicity) in ACTORS.items()]
    (HERE / "VideoDemographics.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file() and p.suffix in (".wav", ".csv"))
    log.info("wrote the CREMA-D replica under %s (%d bytes)", HERE, total)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
