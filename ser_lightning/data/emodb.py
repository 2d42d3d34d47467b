"""EMO-DB: the Berlin Database of Emotional Speech."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import ParseReport, Utterance
from ser_lightning.errors import CorpusNotFoundError, ManifestError

log = logging.getLogger(__name__)

EMOTIONS: dict[str, str] = {
    "W": "angry",  # Wut (anger)
    "L": "bored",  # Langeweile (boredom)
    "E": "disgust",  # Ekel
    "A": "fearful",  # Angst (fear)
    "F": "happy",  # Freude (happiness)
    "T": "sad",  # Trauer (sadness)
    "N": "neutral",
}
"""Emotion letter (the German initial) -> class name, in the corpus documentation's order."""

SPEAKERS: dict[str, str] = {
    "03": "male",
    "08": "female",
    "09": "female",
    "10": "male",
    "11": "male",
    "12": "male",
    "13": "female",
    "14": "female",
    "15": "male",
    "16": "female",
}
"""The ten speakers and their gender."""

TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
"""The ten text codes (five short and five longer everyday sentences, spoken by every speaker)."""

EXPECTED = "wav/<SS><TTT><E><V>.wav files such as wav/03a01Fa.wav (speaker, text code, emotion letter, version)"
_NAME = re.compile(r"^(\d{2})([ab]\d{2})([A-Z])([a-z])$")


class EMODBDataModule(CorpusDataModule):
    """EMO-DB (Berlin): 10 actors (5 female, 5 male), 535 utterances of 10 German sentences in 7 emotions, 16 kHz.

    ``root`` is the folder containing ``wav/`` (as the release unpacks), or ``wav/`` itself. Files are
    ``wav/<SS><TTT><E><V>.wav``, e.g. ``03a01Fa.wav``: speaker (03 08 09 10 11 12 13 14 15 16; male 03 10 11 12
    15), text code (a01 a02 a04 a05 a07 b01 b02 b03 b09 b10), emotion letter, version letter (a, b, ...: takes
    of the same utterance). The release's other folders (``lablaut/``, ``labsilb/``, ``silb/``) are not read.

    Classes, in the order of the documentation's letters: W angry, L bored, E disgust, A fearful, F happy,
    T sad, N neutral. The names are the toolkit's shared vocabulary (the words RAVDESS and CREMA-D use, so
    cross-corpus runs match them without a map); the corpus calls them anger, boredom, disgust, fear,
    happiness, sadness, neutral. The real corpus: 535 utterances (127 angry, 81 bored, 46 disgust, 69 fearful,
    71 happy, 62 sad, 79 neutral).

    Parsing rules: a ``.wav`` whose name does not parse (or names a speaker or text code the corpus does not
    have) is skipped with a warning naming it (``describe()["skipped"]``; an error under ``strict``); an
    unknown emotion letter raises :class:`~ser_lightning.errors.ManifestError` naming the file.

    Records: speaker = its two digits (e.g. ``03``), no session (``loso`` validates on the next speaker),
    sentence = text code (every speaker reads every text, which the split stamps as ``shared_sentences``),
    ``extra`` = gender, version.


    Of the inherited arguments: the corpus is 16 kHz; ``protocol`` is ``loso``, ``kfold`` or ``holdout`` (no
    sessions, so no ``lsso``); ``strict`` also fails on irregular names.
    """

    corpus_name = "emodb"

    @property
    def class_names(self) -> list[str]:
        """The seven emotions, in the documentation's letter order (W L E A F T N)."""
        return list(EMOTIONS.values())

    @property
    def label_map(self) -> dict[str, str]:
        """Emotion letter -> class."""
        return dict(EMOTIONS)

    def wav_dir(self) -> Path | None:
        """The folder of the corpus' ``.wav`` files: ``root/wav``, or ``root`` itself (None when neither)."""
        return emodb_wav_dir(Path(self.root).expanduser()) if self.root else None

    def corpus_root(self) -> Path | None:
        """The ``wav`` folder (what the manifest cache fingerprints)."""
        return self.wav_dir()

    def load_records(self) -> list[Utterance]:
        """Parses the ``wav`` folder's file names (:func:`parse_emodb`)."""
        root = self.require_root(f"wav/ ({EXPECTED})")
        return parse_emodb(root, corpus=self.corpus_name, report=self.parse_report())


def emodb_wav_dir(root: Path) -> Path | None:
    """The folder of EMO-DB's ``.wav`` files: ``root/wav``, or ``root`` itself (None when neither)."""
    if (root / "wav").is_dir():
        return root / "wav"
    if root.is_dir() and any(_NAME.match(p.stem) for p in root.glob("*.wav")):
        return root
    return None


def parse_emodb(root: Path, *, corpus: str = "emodb", report: ParseReport | None = None) -> list[Utterance]:
    """Parses EMO-DB's ``wav`` folder's file names (the rules are :class:`EMODBDataModule`'s).

    Args:
        root: the folder containing ``wav/``, or ``wav/`` itself.
        corpus: the corpus name stored in every record.
        report: collects the skipped files (default: a fresh :class:`~ser_lightning.data.manifest.ParseReport`).

    Returns:
        The utterances, sorted by file name.

    Raises:
        CorpusNotFoundError: no ``wav`` folder or no utterance in it.
        ManifestError: a file name has an unknown emotion letter.
    """
    report = report if report is not None else ParseReport()
    wav = emodb_wav_dir(root)
    if wav is None:
        raise CorpusNotFoundError(f"{root}: no EMO-DB wav/ folder found; expected {EXPECTED}")
    records: list[Utterance] = []
    for path in sorted(p for p in wav.iterdir() if p.is_file() and p.suffix.lower() == ".wav"):
        if path.name.startswith("."):
            continue
        match = _NAME.match(path.stem)
        if match is None:
            report.skip(path, "the name does not follow EMO-DB's <speaker><text><emotion><version>.wav")
            continue
        speaker, text, emotion, version = match.groups()
        if speaker not in SPEAKERS:
            report.skip(path, f"speaker {speaker} is not one of EMO-DB's {' '.join(SPEAKERS)}")
            continue
        if text not in TEXTS:
            report.skip(path, f"text code {text} is not one of EMO-DB's {' '.join(TEXTS)}")
            continue
        if emotion not in EMOTIONS:
            expected = ", ".join(f"{code} {name}" for code, name in EMOTIONS.items())
            raise ManifestError(f"{path}: unknown emotion letter '{emotion}' (expected one of {expected})")
        records.append(
            Utterance(
                path=str(path.resolve()),
                label=EMOTIONS[emotion],
                speaker=speaker,
                sentence=text,
                corpus=corpus,
                utt_id=path.stem,
                extra={"gender": SPEAKERS[speaker], "version": version},
            )
        )
    if not records:
        raise CorpusNotFoundError(f"{wav}: no EMO-DB utterance found; expected {EXPECTED}")
    return records
