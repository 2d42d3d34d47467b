"""CREMA-D: the Crowd-sourced Emotional Multimodal Actors Dataset (its audio, ``AudioWAV``)."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import ParseReport, Utterance
from ser_lightning.errors import CorpusNotFoundError, ManifestError

log = logging.getLogger(__name__)

AUDIO_FOLDER = "AudioWAV"
DEMOGRAPHICS = "VideoDemographics.csv"

EMOTIONS: dict[str, str] = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
"""Emotion code (third field of a file name) -> class name, in the corpus' code order."""

SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
"""The twelve sentence codes and their text."""

LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified", "X": "unspecified"}
"""Emotion level code -> ``extra["intensity"]``. ``X`` is the misspelt ``XX`` of ``1040_ITH_SAD_X.wav`` in copies
made before the authors renamed it."""

KNOWN_FAULTY: dict[str, str] = {
    "1076_MTI_SAD_XX": "the clip holds no speech (a widely reported fault of the CREMA-D release)",
}
"""Clips of the release known to be unusable although their files are well-formed: utterance id -> reason."""

ACTORS = range(1001, 1092)
EXPECTED = f"{AUDIO_FOLDER}/AAAA_SSS_EEE_LL.wav files such as {AUDIO_FOLDER}/1001_DFA_ANG_XX.wav"
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")
_LFS_POINTER = b"version https://git-lfs"


class CREMADDataModule(CorpusDataModule):
    """CREMA-D audio: 91 actors (43 female, 48 male), 7,442 clips of 12 sentences in 6 emotions, 16 kHz.

    ``root`` is the folder containing ``AudioWAV/`` (the release's top folder; ``AudioWAV/`` itself is accepted
    too). Files are ``AudioWAV/AAAA_SSS_EEE_LL.wav``: actor (1001-1091), sentence code (see :data:`SENTENCES`),
    emotion (ANG DIS FEA HAP NEU SAD), emotion level (LO MD HI, only for sentence IEO; XX unspecified).
    ``VideoDemographics.csv`` next to ``AudioWAV/`` is optional; when present, each actor's sex, age, race and
    ethnicity are kept in ``extra`` (``gender``, ``age``, ``race``, ``ethnicity``).

    Classes, in code order: angry, disgust, fearful, happy, neutral, sad (the toolkit's shared vocabulary). The
    label is the emotion the actor was asked to portray (the file name), not the raters' vote.

    Parsing rules and known irregularities of the release:

    * ``1076_MTI_SAD_XX.wav`` holds no speech (a widely reported fault; the file is full-length, so no header
      check catches it): it is skipped by name (see :data:`KNOWN_FAULTY`), named and counted in
      ``describe()["skipped"]`` like every skipped file.
    * Clips whose audio is byte-identical (same content checksum) are one recording: when their labels differ
      the label is ambiguous and every copy is skipped, otherwise the first is kept and the others skipped.
      Copies of the release are reported to hold such pairs (e.g. ``1006_TIE_HAP_XX``/``1006_TIE_NEU_XX``);
      left in, they would contradict each other's labels and leak across utterance-level splits.
    * Empty or unreadable clips are skipped by the base's header probe.
    * ``1040_ITH_SAD_X.wav`` (level ``X``) in copies made before the authors renamed it is read as ``XX``.
    * A ``.wav`` whose name does not parse, or names an actor outside 1001-1091, a sentence code or a level the
      corpus does not have, is skipped with a warning naming it (every skip is an error under ``strict``).
    * An unknown emotion code raises :class:`~ser_lightning.errors.ManifestError` naming the file.
    * A clone made without Git LFS holds pointer files instead of audio: that is reported as such.

    Records: speaker = actor id (``1001``), no session (``kfold``/``holdout`` deal out speakers, ``loso``
    validates on the next actor), sentence = sentence code (every actor speaks every sentence, which the split
    stamps as ``shared_sentences``), ``extra["intensity"]`` = low/medium/high/unspecified.


    Of the inherited arguments: the corpus is 16 kHz; ``protocol`` is ``loso``, ``kfold`` or ``holdout`` (no
    sessions, so no ``lsso``); ``strict`` also fails on irregular names.
    """

    corpus_name = "crema_d"
    manifest_args = ("demographics_state",)

    @property
    def class_names(self) -> list[str]:
        """The six emotions, in code order (ANG DIS FEA HAP NEU SAD)."""
        return list(EMOTIONS.values())

    @property
    def label_map(self) -> dict[str, str]:
        """Emotion code -> class."""
        return dict(EMOTIONS)

    def audio_dir(self) -> Path | None:
        """The ``AudioWAV`` folder: ``root/AudioWAV``, or ``root`` itself when it is that folder."""
        return crema_d_audio_dir(Path(self.root).expanduser()) if self.root else None

    def demographics_file(self) -> Path | None:
        """``VideoDemographics.csv`` next to ``AudioWAV/``, if it is there."""
        audio = self.audio_dir()
        return None if audio is None else crema_d_demographics_file(audio)

    @property
    def demographics_state(self) -> tuple[str, int, int] | None:
        """The demographics file's path, size and modification time (part of the manifest cache key)."""
        path = self.demographics_file()
        if path is None:
            return None
        stat = path.stat()
        return str(path.resolve()), stat.st_size, stat.st_mtime_ns

    def corpus_root(self) -> Path | None:
        """The ``AudioWAV`` folder (what the manifest cache fingerprints; the CSV is keyed by its state)."""
        return self.audio_dir()

    def read_demographics(self) -> dict[str, dict[str, str]]:
        """Actor id -> ``extra`` fields from ``VideoDemographics.csv`` (empty when the file is absent)."""
        path = self.demographics_file()
        return {} if path is None else read_crema_d_demographics(path)

    def load_records(self) -> list[Utterance]:
        """Parses ``AudioWAV``'s file names and the optional demographics (:func:`parse_crema_d`)."""
        root = self.require_root(f"{AUDIO_FOLDER}/ ({EXPECTED}) and optionally {DEMOGRAPHICS}")
        return parse_crema_d(root, corpus=self.corpus_name, report=self.parse_report())

    def records(self) -> list[Utterance]:
        """The checked clips (see the base), without byte-identical copies (see the class docstring)."""
        records = super().records()
        copies: dict[str, list[Utterance]] = {}
        for record in records:
            if record.checksum:
                copies.setdefault(record.checksum, []).append(record)
        drop: set[str] = set()
        for group in copies.values():
            if len(group) < 2:
                continue
            names = ", ".join(Path(r.path).name for r in group)
            if len({r.label for r in group}) > 1:
                for record in group:
                    self.skip(record.path, f"byte-identical recordings under different labels ({names})")
                    drop.add(record.path)
            else:
                for record in group[1:]:
                    self.skip(record.path, f"a byte-identical copy of {Path(group[0].path).name}")
                    drop.add(record.path)
        return [r for r in records if r.path not in drop] if drop else records


def crema_d_audio_dir(root: Path) -> Path | None:
    """CREMA-D's ``AudioWAV`` folder: ``root/AudioWAV``, or ``root`` itself when it is that folder."""
    if (root / AUDIO_FOLDER).is_dir():
        return root / AUDIO_FOLDER
    if root.is_dir() and root.name == AUDIO_FOLDER:
        return root
    return None


def crema_d_demographics_file(audio: Path) -> Path | None:
    """``VideoDemographics.csv`` next to the ``AudioWAV`` folder ``audio``, if it is there."""
    path = audio.parent / DEMOGRAPHICS
    return path if path.is_file() else None


def read_crema_d_demographics(path: Path) -> dict[str, dict[str, str]]:
    """Actor id -> ``extra`` fields (gender, age, race, ethnicity) from ``VideoDemographics.csv``.

    Args:
        path: the CSV file.

    Raises:
        ManifestError: a required column (``ActorID``, ``Age``, ``Sex``) is missing or an actor id is not a
            number (names the file and line).
    """
    out: dict[str, dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("ActorID", "Age", "Sex") if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            actor = (row.get("ActorID") or "").strip()
            if not actor.isdigit():
                raise ManifestError(f"{path}:{line}: ActorID {actor!r} is not an actor number")
            fields = {
                "gender": (row.get("Sex") or "").strip().lower(),
                "age": (row.get("Age") or "").strip(),
                "race": (row.get("Race") or "").strip(),
                "ethnicity": (row.get("Ethnicity") or "").strip(),
            }
            out[actor] = {k: v for k, v in fields.items() if v}
    return out


def parse_crema_d(root: Path, *, corpus: str = "crema_d", report: ParseReport | None = None) -> list[Utterance]:
    """Parses CREMA-D's ``AudioWAV`` file names and the optional demographics (rules: :class:`CREMADDataModule`).

    Byte-identical copies are found later, by the DataModule, once every clip is content-hashed.

    Args:
        root: the folder containing ``AudioWAV/`` (and optionally ``VideoDemographics.csv``), or ``AudioWAV/``.
        corpus: the corpus name stored in every record.
        report: collects the skipped files (default: a fresh :class:`~ser_lightning.data.manifest.ParseReport`).

    Returns:
        The clips, sorted by file name.

    Raises:
        CorpusNotFoundError: no ``AudioWAV`` folder, no clip in it, or Git LFS pointers instead of audio.
        ManifestError: a file name has an unknown emotion code, or the demographics file is malformed.
    """
    report = report if report is not None else ParseReport()
    audio = crema_d_audio_dir(root)
    if audio is None:
        raise CorpusNotFoundError(f"{root}: no CREMA-D {AUDIO_FOLDER}/ folder found; expected {EXPECTED}")
    files = sorted(p for p in audio.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    files = [p for p in files if not p.name.startswith(".")]
    _check_not_lfs_pointers(audio, files)
    demographics_path = crema_d_demographics_file(audio)
    demographics = read_crema_d_demographics(demographics_path) if demographics_path else {}
    records: list[Utterance] = []
    for path in files:
        match = _NAME.match(path.stem)
        if match is None:
            report.skip(path, "the name does not follow CREMA-D's AAAA_SSS_EEE_LL.wav")
            continue
        if path.stem in KNOWN_FAULTY:
            report.skip(path, KNOWN_FAULTY[path.stem])
            continue
        actor, sentence, emotion, level = match.groups()
        if int(actor) not in ACTORS:
            report.skip(path, f"actor {actor} is outside CREMA-D's 1001-1091")
            continue
        if sentence not in SENTENCES:
            report.skip(path, f"sentence code {sentence} is not one of {' '.join(SENTENCES)}")
            continue
        if level not in LEVELS:
            report.skip(path, f"emotion level {level} is not one of LO MD HI XX")
            continue
        if emotion not in EMOTIONS:
            raise ManifestError(f"{path}: unknown emotion code '{emotion}' (expected one of {' '.join(EMOTIONS)})")
        records.append(
            Utterance(
                path=str(path.resolve()),
                label=EMOTIONS[emotion],
                speaker=actor,
                sentence=sentence,
                corpus=corpus,
                utt_id=path.stem,
                extra={**demographics.get(actor, {}), "intensity": LEVELS[level]},
            )
        )
    if not records:
        raise CorpusNotFoundError(f"{audio}: no CREMA-D clip found; expected {EXPECTED}")
    if demographics:
        unknown = sorted({r.speaker for r in records} - set(demographics))
        if unknown:
            log.warning("CREMA-D: actors %s are not in %s (no sex/age for them)", unknown, DEMOGRAPHICS)
    return records


def _check_not_lfs_pointers(audio: Path, files: list[Path]) -> None:
    """Raises when the first clip is a Git LFS pointer (a clone without ``git lfs``), not audio."""
    if not files or files[0].stat().st_size > 1024:
        return
    with files[0].open("rb") as handle:
        head = handle.read(len(_LFS_POINTER))
    if head == _LFS_POINTER:
        raise CorpusNotFoundError(
            f"{audio}: the .wav files are Git LFS pointers, not audio (e.g. {files[0].name}); "
            "fetch the audio with `git lfs pull` in the CREMA-D clone"
        )
