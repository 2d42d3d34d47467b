"""Writes a tiny replica of eNTERFACE'05 in its native layout next to this script.

    python tests/data/enterface/data.py

Layout: ``subject N/<emotion>/sentence K/sN_<code>_K.avi``, each ``.avi`` a container with one PCM audio track
(8 kHz mono, 0.25 s of noise seeded per file, so that no two files are byte-identical), plus the release's
irregularities:

* subjects 4 and 5 missing, ``subject 6`` without a ``surprise`` folder;
* ``subject 2``: ``fear`` and ``sadness`` files directly in the emotion folder (no ``sentence K`` level), and
  ``s2_su_1avi.avi`` (a lost dot) in ``surprise`` without a sentence folder either;
* ``subject 3``: every file named ``s_3_<code>_K.avi``; ``anger/clip.avi`` (no sentence folder,
  no parseable name: loaded with an unknown sentence, as the release's subject 6);
* ``subject 6``: ``anger/sentence 1/s16_an_1.avi`` (named after subject 16), ``fear/sentence 1/avi/s6_fe_1.avi``
  (an extra folder level), ``Happiness/sentence 1/S6_HA_1.AVI`` (capitalisation), and ``s6_an_2.avi`` directly in
  the subject folder (no emotion folder: skipped);
* ``subject 11``: every file named ``s12_<code>_K.avi`` (as in the release);
* ``subject 1``: ``disgust/sentence 1/s1_fe_1.avi`` (named fear, kept as disgust), a second anger sentence;
* ``subject 2/notes.txt`` (not a video: skipped) and a ``Thumbs.db`` (file-system litter: ignored).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 8000
SAMPLES = 2000  # 0.25 s
CODES = {"anger": "an", "disgust": "di", "fear": "fe", "happiness": "ha", "sadness": "sa", "surprise": "su"}


def write_avi(path: Path, seed: int) -> None:
    """An .avi holding only a PCM audio track (8 kHz mono int16), as small as the AVI muxer allows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / RATE
    audio = 0.1 * rng.standard_normal(SAMPLES) + 0.2 * np.sin(2 * np.pi * rng.uniform(100, 400) * t)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
    # A one-entry OpenDML index reserve instead of the default 4 KiB one keeps each file under 6 KB.
    with av.open(str(path), "w", format="avi", options={"reserve_index_space": "40"}) as container:
        stream = container.add_stream("pcm_s16le", rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def files() -> list[str]:
    """Relative paths of the replica's .avi files."""
    out = []
    for emotion, code in CODES.items():
        out.append(f"subject 1/{emotion}/sentence 1/s1_{code}_1.avi")
    out.remove("subject 1/disgust/sentence 1/s1_di_1.avi")
    out += ["subject 1/disgust/sentence 1/s1_fe_1.avi", "subject 1/anger/sentence 2/s1_an_2.avi"]
    for emotion, code in CODES.items():
        if emotion in ("fear", "sadness"):
            out.append(f"subject 2/{emotion}/s2_{code}_1.avi")
        elif emotion == "surprise":
            out.append("subject 2/surprise/s2_su_1avi.avi")
        else:
            out.append(f"subject 2/{emotion}/sentence 1/s2_{code}_1.avi")
    for emotion, code in CODES.items():
        out.append(f"subject 3/{emotion}/sentence 1/s_3_{code}_1.avi")
    out.append("subject 3/anger/clip.avi")
    out += [
        "subject 6/anger/sentence 1/s16_an_1.avi",
        "subject 6/disgust/sentence 1/s6_di_1.avi",
        "subject 6/fear/sentence 1/avi/s6_fe_1.avi",
        "subject 6/Happiness/sentence 1/S6_HA_1.AVI",
        "subject 6/sadness/sentence 1/s6_sa_1.avi",
        "subject 6/s6_an_2.avi",
    ]
    for emotion, code in CODES.items():
        out.append(f"subject 11/{emotion}/sentence 1/s12_{code}_1.avi")
    return out


def main() -> None:
    """Rewrites the replica (only the ``subject N`` folders next to this script)."""
    for old in HERE.glob("subject *"):
        shutil.rmtree(old)
    for seed, rel in enumerate(files()):
        write_avi(HERE / rel, seed)
    (HERE / "subject 2" / "notes.txt").write_text("recording notes, not part of the corpus\n")
    (HERE / "subject 3" / "Thumbs.db").write_bytes(b"\x00" * 16)


if __name__ == "__main__":
    main()
