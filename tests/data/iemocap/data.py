#!/usr/bin/env python3
"""Writes a tiny IEMOCAP replica in the release's native layout: ``IEMOCAP_full_release/`` next to this file.

Five sessions of two actors, two dialogs each (one improvised, one scripted), with consensus label files in the
real ``EmoEvaluation`` format (``%`` header, tab-separated block lines, evaluator and self-evaluation lines) and
0.25 s of 8 kHz int16 noise per turn (seeded by the file name, so no two files are byte-identical).

Irregularities of the real release that the replica carries:

* suffixed dialog names (``Ses03M_impro05a``, ``Ses05M_script01_1b``);
* turns spoken by the actor whose letter is not the dialog's (``Ses01F_impro01_M000`` is ``Ses01M``);
* codes outside the 4-class set (``fru``, ``sur``, ``fea``, ``dis``, ``oth``, ``xxx``);
* a labelled turn whose wav is missing (``Ses02F_impro02_M002``) and a wav without a label
  (``Ses04M_script03_2_M001``);
* an evaluator comment line in a block that looks exactly like a turn line (it must not be read as one);
* ``Categorical/``, ``Attribute/`` and ``Self-evaluation/`` subfolders and a macOS ``._`` copy in
  ``EmoEvaluation/``.

Run: ``python tests/data/iemocap/data.py`` (deterministic; rewrites the replica).
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE / "IEMOCAP_full_release"
RATE = 8000
SAMPLES = 2000  # 0.25 s

# dialog -> [(turn suffix, code, wav written)]
DIALOGS: dict[str, list[tuple[str, str, bool]]] = {
    "Ses01F_impro01": [("F000", "neu", True), ("M000", "ang", True), ("F001", "hap", True),
                       ("M001", "fru", True), ("F002", "sad", True), ("M002", "xxx", True)],
    "Ses01M_script01_1": [("F000", "exc", True), ("M000", "sad", True), ("M001", "neu", True), ("F001", "sur", True)],
    "Ses02F_impro02": [("F000", "ang", True), ("M000", "hap", True), ("F001", "sad", True), ("M001", "neu", True),
                       ("M002", "ang", False)],
    "Ses02M_script02_1": [("F000", "neu", True), ("M000", "exc", True), ("F001", "fea", True), ("M001", "oth", True)],
    "Ses03M_impro05a": [("F000", "sad", True), ("M000", "neu", True), ("F001", "ang", True), ("M001", "exc", True)],
    "Ses03F_script01_2": [("F000", "hap", True), ("M000", "ang", True), ("M001", "dis", True), ("F001", "fru", True)],
    "Ses04F_impro03": [("F000", "neu", True), ("M000", "sad", True), ("F001", "exc", True), ("M001", "ang", True),
                       ("F002", "xxx", True)],
    "Ses04M_script03_2": [("F000", "ang", True), ("M000", "hap", True), ("F001", "sur", True)],
    "Ses05M_impro04": [("F000", "hap", True), ("M000", "neu", True), ("F001", "ang", True), ("M001", "sad", True)],
    "Ses05M_script01_1b": [("F000", "sad", True), ("M000", "exc", True), ("F001", "neu", True), ("M001", "fea", True),
                           ("F002", "sur", True)],
}  # fmt: skip
UNLABELLED_WAVS = ["Ses04M_script03_2_M001"]

CATEGORY = {"neu": "Neutral", "hap": "Happiness", "exc": "Excited", "ang": "Anger", "sad": "Sadness",
            "fru": "Frustration", "sur": "Surprise", "fea": "Fear", "dis": "Disgust", "oth": "Other"}  # fmt: skip
VAD = {"neu": (3.0, 2.5, 2.5), "hap": (4.0, 3.0, 3.0), "exc": (4.0, 3.5, 3.0), "ang": (1.5, 4.0, 4.5),
       "sad": (2.0, 2.0, 2.0), "fru": (2.0, 3.5, 3.5), "sur": (3.5, 4.0, 3.0), "fea": (1.5, 3.5, 2.0),
       "dis": (1.5, 3.0, 3.5), "oth": (2.5, 3.0, 3.0), "xxx": (2.5, 3.0, 3.0)}  # fmt: skip
LINES = ["Excuse me.", "Do you have your forms?", "Yeah.", "Let me see them.", "Is there a problem?",
         "Who told you to get in this line?", "You did.", "Okay. But not in this line."]  # fmt: skip


def noise(name: str) -> np.ndarray:
    """0.25 s of int16 noise seeded by the file name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return (rng.normal(size=SAMPLES) * 3000).clip(-32768, 32767).astype(np.int16)


def block(dialog: str, index: int, suffix: str, code: str) -> tuple[str, str]:
    """One EmoEvaluation block (turn line + evaluator lines) and the turn's transcription line."""
    turn = f"{dialog}_{suffix}"
    start = 6.2901 + 7.3111 * index
    end = start + 1.9456 + 0.4 * (index % 3)
    v, a, d = VAD[code]
    lines = [f"[{start:.4f} - {end:.4f}]\t{turn}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]"]
    if code == "xxx":  # no majority: the evaluators disagree
        cats = ["Frustration;", "Anger; Frustration;", "Neutral;"]
    else:
        cats = [f"{CATEGORY[code]};", f"{CATEGORY[code]};", "Other:unsure;" if code == "dis" else f"{CATEGORY[code]};"]
    lines += [f"C-E{e}:\t{cat}\t()" for e, cat in zip((2, 3, 4), cats, strict=True)]
    self_eval = suffix[0]  # the speaking actor rates their own turn in some sessions
    if dialog.startswith(("Ses01", "Ses02")):
        lines.append(f"C-{self_eval}1:\t{CATEGORY.get(code, 'Neutral')};\t()")
    lines.append(f"A-E3:\tval {round(v)}; act {round(a)}; dom  {round(d)};\t()")
    lines.append(f"A-E4:\tval {round(v)}; act {round(a + 0.4)}; dom  {round(d)};\t(mildly aggravated)")
    if dialog.startswith(("Ses01", "Ses02")):
        lines.append(f"A-{self_eval}1:\tval {round(v)}; act {round(a)}; dom  {round(d)};\t()")
    if turn == "Ses01F_impro01_F001":
        # An evaluator's comment pasted with the turn line of another version of the label: it looks exactly like
        # a turn line but is inside the block, so it is not one.
        lines.append(f"[{start:.4f} - {end:.4f}]\t{turn}\tsad\t[1.0000, 2.0000, 2.0000]")
        lines.append("C-E5:\tHappiness;\t(laughs at [12.0000 - 13.5000] Ses01F_impro01_M001 ang [1, 4, 4])")
    text = f"{turn} [{start:08.4f}-{end:08.4f}]: {LINES[index % len(LINES)]}"
    return "\n".join(lines), text


def main() -> None:
    """Writes the replica (removing an earlier one)."""
    if ROOT.exists():
        shutil.rmtree(ROOT)
    for dialog, turns in DIALOGS.items():
        session = ROOT / f"Session{int(dialog[3:5])}"
        emo = session / "dialog" / "EmoEvaluation"
        emo.mkdir(parents=True, exist_ok=True)
        (session / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
        blocks, texts = [], []
        for index, (suffix, code, has_wav) in enumerate(turns):
            text_block, text = block(dialog, index, suffix, code)
            blocks.append(text_block)
            texts.append(text)
            if has_wav:
                wav = session / "sentences" / "wav" / dialog / f"{dialog}_{suffix}.wav"
                wav.parent.mkdir(parents=True, exist_ok=True)
                sf.write(wav, noise(wav.name), RATE, subtype="PCM_16")
        header = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        (emo / f"{dialog}.txt").write_text(header + "\n\n".join(blocks) + "\n\n", newline="\n")
        (session / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(texts) + "\n", newline="\n")
    for name in UNLABELLED_WAVS:
        dialog = name.rpartition("_")[0]
        wav = ROOT / f"Session{int(name[3:5])}" / "sentences" / "wav" / dialog / f"{name}.wav"
        sf.write(wav, noise(wav.name), RATE, subtype="PCM_16")

    # What else lives in EmoEvaluation/: per-evaluator files in subfolders and a macOS AppleDouble copy.
    emo = ROOT / "Session1" / "dialog" / "EmoEvaluation"
    turns = [f"Ses01F_impro01_{suffix}" for suffix, _, _ in DIALOGS["Ses01F_impro01"]]
    (emo / "Categorical").mkdir()
    (emo / "Categorical" / "Ses01F_impro01_e2_cat.txt").write_text(
        "".join(f"{t} :Neutral state; ()\n" for t in turns), newline="\n"
    )
    (emo / "Attribute").mkdir()
    (emo / "Attribute" / "Ses01F_impro01_e3_atr.txt").write_text(
        "".join(f"{t} :act 2; val 3; dom  2; ()\n" for t in turns), newline="\n"
    )
    (emo / "Self-evaluation").mkdir()
    (emo / "Self-evaluation" / "Ses01F_impro01.txt").write_text(
        "".join(f"[0.0000 - 1.0000]\t{t}\tzzz\t[0.0000, 0.0000, 0.0000]\n\n" for t in turns), newline="\n"
    )
    (emo / "._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(48))


if __name__ == "__main__":
    main()
