#!/usr/bin/env python3
"""Writes a tiny MSP-IMPROV replica in the release's native layout: ``MSP-IMPROV/`` next to this file.

Six sessions of two actors (``F01``..``M06``); each actor has one clip per recording condition (T target-
improvised, R target-read, S other-improvised, P natural interaction) of the same shared sentences, nested as
``Audio/session<k>/S<nn><E>/<C>/MSP-IMPROV-S<nn><E>-<G><0k>-<C>-<G><P><tt>.wav`` (0.25 s of 8 kHz int16 noise
seeded by the file name, so no two files are byte-identical). The consensus label file carries the release's
misspelt name ``Evalution.txt`` and its format: blank-line-separated blocks of a clip line
(``UTD-IMPROV-<name>.avi; <category>; A:..; V:..; D:.. ; N:..;``) followed by one line per rater.

Irregularities of the real release that the replica carries:

* consensus categories that differ from the target emotion the actors were asked for, and ``X`` (no
  agreement) and ``O`` (other) clips;
* a labelled clip whose wav is missing (``S01A-F04-R-FM02``) and a wav without a label (``S02H-M05-R-MF02``);
* a ``NaN`` mean rating and a macOS ``._`` copy of a wav.

Run: ``python tests/data/msp_improv/data.py`` (deterministic; rewrites the replica).
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE / "MSP-IMPROV"
RATE = 8000
SAMPLES = 2000  # 0.25 s

SPEAKERS = [f"{g}0{k}" for k in range(1, 7) for g in "FM"]
# Each actor: (sentence + target emotion, condition, turn number); the consensus cycles through A H N S.
BASE = [("S01A", "T", 1), ("S02H", "R", 1), ("S03S", "S", 1), ("S01A", "P", 2)]
# Extra labelled clips: (speaker, sentence + target, condition, turn, consensus, wav written)
EXTRA = [
    ("F02", "S02H", "T", 2, "X", True),
    ("M03", "S03S", "P", 4, "O", True),
    ("F04", "S01A", "R", 2, "A", False),
]
UNLABELLED = [("M05", "S02H", "R", 2)]
NAN_CLIP = "S03S-F03-S-FM01"

WORD = {"A": "Angry", "H": "Happy", "N": "Neutral", "S": "Sad", "O": "Other"}
SECONDARY = {"A": "Frustrated,Annoyed", "H": "Amused", "N": "", "S": "Disappointed,Depressed", "O": "Bored"}
RATERS = ["A2HM35CWB7IIFM", "A1Y6OP7SBLV7GQ", "A3LG4VSDUCK2MV", "AKSJ3C5O3V9RB", "A1F9KLZGHE9DTA"]
RATING = {"A": (4, 2, 4), "H": (3, 4, 3), "N": (2, 3, 3), "S": (2, 2, 2), "O": (3, 3, 3)}  # arousal, valence, dom.


def noise(name: str) -> np.ndarray:
    """0.25 s of int16 noise seeded by the file name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return (rng.normal(size=SAMPLES) * 3000).clip(-32768, 32767).astype(np.int16)


def clip_name(speaker: str, sentence: str, condition: str, turn: int) -> str:
    """``S01A-F01-R-FM01``: the tail is the speaker's and the partner's gender and the turn number."""
    partner = "M" if speaker[0] == "F" else "F"
    return f"{sentence}-{speaker}-{condition}-{speaker[0]}{partner}{turn:02d}"


def wav_path(name: str) -> Path:
    """``Audio/session<k>/S<nn><E>/<C>/MSP-IMPROV-<name>.wav``."""
    sentence, speaker, condition, _ = name.split("-")
    return ROOT / "Audio" / f"session{int(speaker[1:])}" / sentence / condition / f"MSP-IMPROV-{name}.wav"


def block(name: str, consensus: str, index: int) -> str:
    """One clip's block: the consensus line and its rater lines."""
    if consensus == "X":  # no agreement: every rater says something else
        votes = ["A", "H", "S", "N"]
    else:
        votes = [consensus, consensus, "N" if consensus != "N" else "S", consensus][: 3 + index % 2]
    rows, sums = [], np.zeros(4)
    for i, vote in enumerate(votes):
        a, v, d = RATING[vote]
        a, v, d, n = a + (i % 2), v, d - (i % 2), 3 + (index + i) % 3
        sums += (a, v, d, n)
        rows.append(
            f"{RATERS[(index + i) % len(RATERS)]}; {WORD[vote]}; {SECONDARY[vote]}; "
            f"A:{a:.6f}; V:{v:.6f}; D:{d:.6f}; N:{n:.6f};"
        )
    mean = [f"{x:.6f}" for x in sums / len(votes)]
    if name == NAN_CLIP:
        mean[3] = "NaN"
    head = f"UTD-IMPROV-{name}.avi; {consensus}; A:{mean[0]}; V:{mean[1]}; D:{mean[2]} ; N:{mean[3]};"
    return "\n".join([head, *rows])


def main() -> None:
    """Writes the replica (removing an earlier one)."""
    if ROOT.exists():
        shutil.rmtree(ROOT)
    blocks = []
    clips: list[tuple[str, str, bool]] = []
    for i, speaker in enumerate(SPEAKERS):
        for j, (sentence, condition, turn) in enumerate(BASE):
            clips.append((clip_name(speaker, sentence, condition, turn), "AHNS"[(i + j) % 4], True))
    for speaker, sentence, condition, turn, consensus, has_wav in EXTRA:
        clips.append((clip_name(speaker, sentence, condition, turn), consensus, has_wav))
    for index, (name, consensus, has_wav) in enumerate(clips):
        blocks.append(block(name, consensus, index))
        if has_wav:
            path = wav_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, noise(path.name), RATE, subtype="PCM_16")
    for speaker, sentence, condition, turn in UNLABELLED:
        path = wav_path(clip_name(speaker, sentence, condition, turn))
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, noise(path.name), RATE, subtype="PCM_16")
    (ROOT / "Evalution.txt").write_text("\n\n".join(blocks) + "\n", newline="\n")
    apple = wav_path(clip_name("F01", "S01A", "T", 1))
    (apple.parent / f"._{apple.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(48))


if __name__ == "__main__":
    main()
