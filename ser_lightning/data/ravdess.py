"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song (its audio-only speech part)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import ParseReport, Utterance
from ser_lightning.errors import CorpusNotFoundError, ManifestError

log = logging.getLogger(__name__)

SPEECH_FOLDER = "Audio_Speech_Actors_01-24"
"""The folder the audio-only speech release unpacks into (Kaggle's copy spells it in lower case)."""

EMOTIONS: dict[str, str] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
"""Emotion code (third field of a file name) -> class name, in the corpus' own words and order."""

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "8class": tuple(EMOTIONS.values()),
    "7class": tuple(name for name in EMOTIONS.values() if name != "calm"),
}
"""The class sets, in label order. ``7class`` leaves calm out (Paul et al. 2025: the seven emotions RAVDESS shares with
IEMOCAP); calm utterances are dropped, not merged into neutral."""

INTENSITIES = {"01": "normal", "02": "strong"}
MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
TWO_WAY = ("01", "02")

EXPECTED = (
    f"{SPEECH_FOLDER}/Actor_01 .. Actor_24/03-01-EE-II-SS-RR-AA.wav (or the Actor_XX folders themselves, "
    "as the release's zip unpacks them)"
)
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_ACTOR_DIR = re.compile(r"^Actor_(\d+)$")
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")


def _actor_dirs(folder: Path) -> list[tuple[int, Path]]:
    """The ``Actor_XX`` subfolders of a folder with their actor numbers, sorted."""
    found = ((_ACTOR_DIR.match(p.name), p) for p in folder.iterdir() if p.is_dir())
    return sorted((int(match.group(1)), p) for match, p in found if match)


class RAVDESSDataModule(CorpusDataModule):
    """RAVDESS audio-only speech: 24 actors (12 female, 12 male), 1,440 utterances, 48 kHz.

    Every actor speaks the same two statements ("Kids are talking by the door", "Dogs are sitting by the door"),
    twice each, in eight emotions, all but neutral at two intensities: 60 files per actor. The audio is
    resampled on loading to ``sample_rate``.

    ``root`` is the folder holding ``Audio_Speech_Actors_01-24/`` (any letter case), that folder itself, or a
    folder of ``Actor_XX/`` subfolders (the release's zips unpack straight into ``Actor_XX/``). Files are
    ``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav``: modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel
    (01 speech, 02 song), emotion (see :data:`EMOTIONS`), intensity (01 normal, 02 strong), statement (01/02),
    repetition (01/02), actor (odd male, even female).

    Parsing rules:

    * Song files (vocal channel 02) and video files (modalities 01/02, ``.mp4``) are not speech audio: they are
      left out silently (e.g. when the song and video zips were unpacked into the same ``Actor_XX`` folders) and
      counted in :attr:`ignored` (``describe()["ignored_files"]``).
    * A ``.wav`` whose name does not parse, or whose actor field disagrees with its ``Actor_XX`` folder, is
      skipped with a warning naming it (counted in ``describe()["skipped"]``; an error under ``strict``).
    * An emotion code outside 01-08 raises :class:`~ser_lightning.errors.ManifestError` naming the file.
    * Utterances whose class is not in ``label_set`` (calm under ``7class``) are dropped and counted in
      :attr:`dropped` (``describe()["dropped_labels"]``).

    Records: speaker ``Actor_XX``, no session (``loso`` validates on the next speaker), sentence = statement id
    (``01``/``02``; every speaker shares both, which the split stamps as ``shared_sentences``), ``extra`` =
    gender, intensity, statement, repetition.


    Of the inherited arguments: the corpus is recorded at 48 kHz; ``protocol`` is ``loso``, ``kfold`` or
    ``holdout`` (no sessions, so no ``lsso``); ``strict`` also fails on irregular names.

    Args:
        label_set: ``8class`` (all eight emotions) or ``7class`` (without calm, Paul et al. 2025).
    """

    corpus_name = "ravdess"
    manifest_args = ("label_set",)

    def __init__(
        self,
        label_set: Literal["8class", "7class"] = "8class",
        **kwargs: Any,
    ) -> None:
        if label_set not in LABEL_SETS:
            raise ValueError(f"unknown RAVDESS label_set {label_set!r}; expected one of {sorted(LABEL_SETS)}")
        super().__init__(**kwargs)
        self.label_set = label_set
        self.dropped: dict[str, int] = {}
        """Utterances left out because their class is not in ``label_set``: class -> count."""
        self.ignored: dict[str, int] = {}
        """Files left out because they are not audio-only speech (``song``, ``video``) -> count."""
        self._parsed = False

    @property
    def class_names(self) -> list[str]:
        """The classes of ``label_set``, in the corpus' emotion-code order."""
        return list(LABEL_SETS[self.label_set])

    @property
    def label_map(self) -> dict[str, str]:
        """Emotion code -> class, for the codes ``label_set`` keeps."""
        keep = set(self.class_names)
        return {code: name for code, name in EMOTIONS.items() if name in keep}

    def speech_dir(self) -> Path | None:
        """The folder of ``Actor_XX`` subfolders under ``root`` (None when there is none)."""
        return ravdess_speech_dir(Path(self.root).expanduser()) if self.root else None

    def corpus_root(self) -> Path | None:
        """The speech folder (what the manifest cache fingerprints)."""
        return self.speech_dir()

    def records(self) -> list[Utterance]:
        """The checked utterances (see the base); :attr:`dropped`/:attr:`ignored` are recounted on a cache hit."""
        self._parsed = False
        records = super().records()
        if not self._parsed:  # answered from the manifest cache: recount what the parse leaves out (names only)
            self._parse(ParseReport(on_skip=lambda path, reason: None))
        return records

    def load_records(self) -> list[Utterance]:
        """Parses the ``Actor_XX`` folders' file names (:func:`parse_ravdess`)."""
        self.require_root(EXPECTED)
        self._parsed = True
        records = self._parse(self.parse_report())
        if self.dropped or self.ignored:
            log.info("ravdess: dropped labels %s; ignored non-speech files %s", self.dropped, self.ignored)
        return records

    def _parse(self, report: ParseReport) -> list[Utterance]:
        records = parse_ravdess(Path(str(self.root)).expanduser(), label_set=self.label_set,
                                corpus=self.corpus_name, report=report)  # fmt: skip
        self.dropped, self.ignored = report.dropped, report.ignored
        return records

    def describe(self) -> dict[str, object]:
        """The base's data stamp plus the non-speech files left out (``ignored_files``)."""
        stamp = super().describe()
        stamp["ignored_files"] = dict(self.ignored)
        return stamp


def ravdess_speech_dir(root: Path) -> Path | None:
    """The folder of RAVDESS' ``Actor_XX`` subfolders: a speech folder in ``root``, or ``root`` (None: neither)."""
    if not root.is_dir():
        return None
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() == SPEECH_FOLDER.lower() and _actor_dirs(child):
            return child
    return root if _actor_dirs(root) else None


def parse_ravdess(
    root: Path,
    *,
    label_set: Literal["8class", "7class"] = "8class",
    corpus: str = "ravdess",
    report: ParseReport | None = None,
) -> list[Utterance]:
    """Parses RAVDESS' ``Actor_XX`` folders' file names (the rules are :class:`RAVDESSDataModule`'s).

    Args:
        root: the folder holding the speech folder or the ``Actor_XX`` folders.
        label_set: which emotions are classes (others are dropped and counted in ``report.dropped``).
        corpus: the corpus name stored in every record.
        report: collects skipped files, dropped labels and the non-speech files left out (``ignored``:
            ``song``, ``video``); default: a fresh :class:`~ser_lightning.data.manifest.ParseReport`.

    Returns:
        The audio-only speech utterances of the classes, by actor and file name.

    Raises:
        CorpusNotFoundError: no ``Actor_XX`` folder, or no speech file of the classes.
        ManifestError: a file name has an unknown emotion code.
    """
    report = report if report is not None else ParseReport()
    speech = ravdess_speech_dir(root)
    if speech is None:
        raise CorpusNotFoundError(f"{root}: no RAVDESS speech found; expected {EXPECTED}")
    keep = set(LABEL_SETS[label_set])
    records: list[Utterance] = []
    for folder_actor, folder in _actor_dirs(speech):
        for path in sorted(folder.iterdir()):
            suffix = path.suffix.lower()
            if not path.is_file() or path.name.startswith(".") or suffix not in (".wav", *_VIDEO_SUFFIXES):
                continue
            if suffix != ".wav":
                report.ignore("video")
                continue
            match = _NAME.match(path.stem)
            if match is None:
                report.skip(path, "the name does not follow RAVDESS' MM-VV-EE-II-SS-RR-AA.wav")
                continue
            modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
            problem = _field_problem(modality, channel, intensity, statement, repetition)
            if problem:
                report.skip(path, problem)
                continue
            if modality != "03":
                report.ignore("video")
                continue
            if channel == "02":
                report.ignore("song")
                continue
            if int(actor) != folder_actor:
                report.skip(path, f"its actor field {actor} disagrees with its folder {folder.name}")
                continue
            if emotion not in EMOTIONS:
                expected = ", ".join(f"{c} {n}" for c, n in EMOTIONS.items())
                raise ManifestError(f"{path}: unknown emotion code '{emotion}' (expected one of {expected})")
            label = EMOTIONS[emotion]
            if label not in keep:
                report.drop(label)
                continue
            records.append(
                Utterance(
                    path=str(path.resolve()),
                    label=label,
                    speaker=f"Actor_{int(actor):02d}",
                    sentence=statement,
                    corpus=corpus,
                    utt_id=path.stem,
                    extra={
                        "gender": "male" if int(actor) % 2 else "female",
                        "intensity": INTENSITIES[intensity],
                        "statement": statement,
                        "repetition": repetition,
                    },
                )
            )
    if not records:
        raise CorpusNotFoundError(
            f"{speech}: no audio-only speech file of the classes {list(LABEL_SETS[label_set])} found (ignored "
            f"non-speech files: {report.ignored or 'none'}); expected {EXPECTED}"
        )
    return records


def _field_problem(modality: str, channel: str, intensity: str, statement: str, repetition: str) -> str:
    """Why a parsed name's fields are out of range ("" when they are fine)."""
    for field, value, allowed in (
        ("modality", modality, MODALITIES),
        ("vocal channel", channel, VOCAL_CHANNELS),
        ("intensity", intensity, INTENSITIES),
        ("statement", statement, TWO_WAY),
        ("repetition", repetition, TWO_WAY),
    ):
        if value not in allowed:
            return f"{field} code {value} is not one of {', '.join(allowed)}"
    return ""
