"""eNTERFACE'05: six acted emotions, audio decoded from the release's ``.avi`` files, parsed by folder."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import ParseReport, Utterance
from ser_lightning.errors import CorpusNotFoundError

log = logging.getLogger(__name__)

Emotion = Literal["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
"""The six classes, in label order (also the release's emotion folder names)."""
EMOTION_CODES: dict[str, str] = {"an": "anger", "di": "disgust", "fe": "fear", "ha": "happiness", "sa": "sadness",
                                 "su": "surprise"}  # fmt: skip
"""The two-letter codes of the file names."""
CODE_OF = {name: code for code, name in EMOTION_CODES.items()}

_SUBJECT_DIR = re.compile(r"^subject[\s_-]*(\d+)$", re.IGNORECASE)
_SENTENCE_DIR = re.compile(r"^sentence[\s_-]*(\d+)$", re.IGNORECASE)
_STRICT_NAME = re.compile(r"^s(\d+)_(an|di|fe|ha|sa|su)_(\d+)$")
# Lenient: `S6_HA_1`, `s_3_an_1` (subject 3), `s16_su_3avi` (a lost dot): subject, emotion code, sentence.
_LENIENT_NAME = re.compile(r"^s[\s_-]*(\d+)[\s_-]+(an|di|fe|ha|sa|su)[a-z]*[\s_-]*(\d+)", re.IGNORECASE)
_IGNORED_FILES = {"thumbs.db", "desktop.ini"}
LAYOUT = "`subject N/<anger|disgust|fear|happiness|sadness|surprise>/sentence K/sN_<an|di|fe|ha|sa|su>_K.avi`"


class ENTERFACEDataModule(CorpusDataModule):
    """eNTERFACE'05 audio-visual emotion database: 42 subjects, six emotions, five sentences per emotion.

    ``root`` is the folder that holds the ``subject N`` folders, laid out as
    ``subject N/<emotion>/sentence K/sN_<an|di|fe|ha|sa|su>_K.avi``. The audio track of each ``.avi`` is decoded
    with PyAV (48 kHz in the release) and resampled to ``sample_rate``.

    The release is irregular: subjects and folders are missing, some files are named after another subject
    (``subject 11`` holds ``s12_*`` files, ``subject 6`` a ``s16_*`` one), names are malformed (``s_3_an_1``,
    ``s16_su_3avi.avi``), some emotion folders have no ``sentence K`` level (the files lie in the emotion
    folder) or an extra level, and capitalisation varies (``.AVI``). The folders are therefore authoritative:
    the subject and emotion come from the ``subject N`` and emotion folders, the sentence from the
    ``sentence K`` folder (from the file name only when there is none). A name that disagrees with its folders
    is kept under the folders' values, logged at INFO and counted in :attr:`irregular` (reported by
    :meth:`describe`). A file in an emotion folder whose sentence cannot be told (no ``sentence K`` folder and a
    name that is not ``sN_<code>_K``, as in the release's subject 6) is valid labelled audio: it is loaded with
    an unknown (empty) sentence, counted as ``unknown_sentence`` in :attr:`irregular` and in the split's stamp
    (``describe()["unknown_sentence"]``), and its utterance id ends in its file name
    (``s<N>_<code>_<name>``). An unknown sentence matches no sentence in the leakage checks
    (:func:`~ser_lightning.data.splits.make_split`). Files that cannot be attributed (outside an emotion
    folder, non-video files) are skipped with a warning and counted (``describe()["skipped"]``).

    Speakers are the subjects (``subject N``; gender is not documented); sentences are ``<emotion>_<K>`` (each
    emotion has its own five sentences); there are no sessions, so ``loso`` validates on the next subject.
    Utterance ids are canonical (``s<N>_<code>_<K>``, from the folders), so files named after another subject do
    not collide with that subject's own files.


    Of the inherited arguments: ``root`` holds the ``subject N`` folders; the release's audio tracks are 48 kHz;
    ``lsso`` does not apply (no sessions); ``strict`` also fails on unattributable files.

    Args:
        emotions: the classes to keep, in label order (default: all six); utterances of other emotions are
            dropped and counted in ``describe()["dropped_labels"]``.
    """

    corpus_name = "enterface"
    manifest_args = ("emotions",)

    def __init__(
        self,
        emotions: list[Emotion] | None = None,
        **kwargs: Any,
    ) -> None:
        selected = list(emotions) if emotions else list(EMOTIONS)
        unknown = [e for e in selected if e not in EMOTIONS]
        if unknown:
            raise ValueError(f"unknown eNTERFACE emotion(s) {unknown}; expected some of {list(EMOTIONS)}")
        if len(set(selected)) != len(selected) or len(selected) < 2:
            raise ValueError(f"emotions must be at least two distinct names, got {selected}")
        super().__init__(**kwargs)
        self.emotions = selected
        self.dropped: dict[str, int] = {}
        self.irregular: dict[str, int] = {}

    @property
    def class_names(self) -> list[str]:
        """The selected emotions, in label order."""
        return list(self.emotions)

    @property
    def label_map(self) -> dict[str, str]:
        """Emotion folder / file-name code -> class name of the selected emotions."""
        return {code: name for code, name in EMOTION_CODES.items() if name in self.emotions}

    def load_records(self) -> list[Utterance]:
        """Walks the ``subject N`` folders and attributes every ``.avi`` by its folders (:func:`parse_enterface`).

        Raises:
            CorpusNotFoundError: ``root`` is missing or holds no ``subject N`` folder.
        """
        root = self.require_root(f"the `subject N` folders of eNTERFACE'05 ({LAYOUT})")
        self.dropped, self.irregular = {}, {}
        report = self.parse_report()
        records = parse_enterface(root, emotions=self.emotions, corpus=self.corpus_name, report=report)
        self.dropped, self.irregular = report.dropped, report.irregular
        if self.irregular:
            log.info("eNTERFACE: kept %d irregular file name(s)/layout(s) by their folders: %s",
                     sum(self.irregular.values()), self.irregular)  # fmt: skip
        if self.dropped:
            log.info("eNTERFACE: dropped emotions outside %s: %s", self.emotions, self.dropped)
        return records

    def describe(self) -> dict[str, object]:
        """The base description plus the irregular file names/layouts kept by their folders (by kind).

        The counts come from the last parse of the corpus; a run that reuses the manifest cache reports none.
        """
        return {**super().describe(), "irregular": dict(self.irregular)}


def _subject_dirs(root: Path) -> list[tuple[int, Path]]:
    found = []
    for child in root.iterdir():
        match = _SUBJECT_DIR.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found, key=lambda item: (item[0], item[1].name))


def _irregular(report: ParseReport, kind: str, path: Path, detail: str) -> None:
    report.flag(kind)
    log.info("eNTERFACE irregularity (%s) in %s: %s", kind, path, detail)


def parse_enterface(
    root: Path,
    *,
    emotions: Sequence[Emotion] | None = None,
    corpus: str = "enterface",
    report: ParseReport | None = None,
) -> list[Utterance]:
    """Walks eNTERFACE'05's ``subject N`` folders and attributes every ``.avi`` by its folders.

    The rules are :class:`ENTERFACEDataModule`'s.

    Args:
        root: the folder of the ``subject N`` folders.
        emotions: the emotions kept (default: all six); others are dropped and counted in ``report.dropped``.
        corpus: the corpus name stored in every record.
        report: collects skipped files, dropped emotions and the irregular names/layouts kept (``irregular``,
            by kind); default: a fresh :class:`~ser_lightning.data.manifest.ParseReport`.

    Returns:
        The utterances, by subject and path.

    Raises:
        CorpusNotFoundError: ``root`` holds no ``subject N`` folder.
    """
    report = report if report is not None else ParseReport()
    subjects = _subject_dirs(root)
    if not subjects:
        hint = ""
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            if _subject_dirs(child):
                hint = f"; did you mean {child}?"
                break
        raise CorpusNotFoundError(f"no `subject N` folder in {root}; expected the eNTERFACE'05 layout {LAYOUT}{hint}")
    keep = set(emotions or EMOTIONS)
    records: list[Utterance] = []
    seen: dict[str, str] = {}
    for number, folder in subjects:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            record = _attribute(number, folder, path, corpus, report)
            if record is None:
                continue
            if record.label not in keep:
                report.drop(record.label)
                continue
            if record.utt_id in seen:
                base, n = record.utt_id, 2
                while f"{base}-{n}" in seen:
                    n += 1
                _irregular(report, "duplicate_slot", path, f"a second file for {base} (first: {seen[base]})")
                record = replace(record, utt_id=f"{base}-{n}")
            seen[record.utt_id] = record.path
            records.append(record)
    return records


def _slug(text: str) -> str:
    """A file stem made safe for an utterance id (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _attribute(subject: int, subject_dir: Path, path: Path, corpus: str, report: ParseReport) -> Utterance | None:
    """The record of one file under a subject folder, or None (skipped or silently ignored)."""
    name = path.name
    if name.startswith(".") or name.lower() in _IGNORED_FILES:
        return None  # file-system litter (.DS_Store, Thumbs.db), not part of the corpus
    if path.suffix.lower() != ".avi":
        report.skip(path, "not an .avi video file")
        return None
    folders = path.relative_to(subject_dir).parts[:-1]
    emotion_at = next((i for i, f in enumerate(folders) if f.lower() in EMOTIONS), None)
    if emotion_at is None:
        report.skip(path, f"not inside an emotion folder ({', '.join(EMOTIONS)}) of its subject folder")
        return None
    emotion = folders[emotion_at].lower()
    below = folders[emotion_at + 1 :]
    sentence_at = next((i for i, f in enumerate(below) if _SENTENCE_DIR.match(f)), None)
    folder_sentence = int(_SENTENCE_DIR.match(below[sentence_at]).group(1)) if sentence_at is not None else None
    stem = path.stem
    parsed = _LENIENT_NAME.match(stem)

    flags = []

    def note(kind: str, detail: str) -> None:
        flags.append(kind)
        _irregular(report, kind, path, detail)

    if not _STRICT_NAME.match(stem.lower()):
        note("nonstandard_name", f"{name!r} is not s{subject}_{CODE_OF[emotion]}_K.avi")
    if any(f != f.lower() for f in (subject_dir.name, *folders)) or name != name.lower():
        note("capitalisation", "upper-case letters in the folder or file name")
    if folder_sentence is None and parsed is None:
        note("unknown_sentence", "no `sentence K` folder and the name is not sN_<code>_K: loaded, sentence unknown")
    elif folder_sentence is None:
        note("no_sentence_folder", "the file lies in its emotion folder; sentence taken from the name")
    extra_levels = len(below) - (1 if sentence_at is not None else 0) + (emotion_at)
    if extra_levels:
        note("extra_folder_level", f"{extra_levels} folder level(s) beyond subject/emotion/sentence")
    if parsed is not None:
        name_subject, name_code, name_sentence = int(parsed.group(1)), parsed.group(2).lower(), int(parsed.group(3))
        if name_subject != subject:
            note("subject_mismatch", f"named after subject {name_subject}, kept as subject {subject}")
        if EMOTION_CODES[name_code] != emotion:
            note("emotion_mismatch", f"named {EMOTION_CODES[name_code]}, kept as {emotion} (its folder)")
        if folder_sentence is not None and name_sentence != folder_sentence:
            note("sentence_mismatch", f"named sentence {name_sentence}, kept as sentence {folder_sentence}")
    sentence: int | None = folder_sentence if folder_sentence is not None else (
        int(parsed.group(3)) if parsed is not None else None
    )
    extra = {"file_name": name, "sentence_number": "" if sentence is None else str(sentence)}
    if flags:
        extra["irregular"] = ",".join(flags)
    return Utterance(
        path=str(path.resolve()),
        label=emotion,
        speaker=f"subject {subject}",
        session="",
        sentence="" if sentence is None else f"{emotion}_{sentence}",
        corpus=corpus,
        utt_id=f"s{subject}_{CODE_OF[emotion]}_{_slug(stem) if sentence is None else sentence}",
        extra=extra,
    )
