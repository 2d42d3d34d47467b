"""MSP-IMPROV (Busso et al., 2017): twelve actors in six dyadic sessions, target sentences in improvisations."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import ParseReport, Utterance
from ser_lightning.errors import CorpusNotFoundError, ManifestError

log = logging.getLogger(__name__)

Condition = Literal["target_improvised", "target_read", "other_improvised", "natural"]
CONDITIONS: dict[str, str] = {
    "T": "target_improvised",
    "R": "target_read",
    "S": "other_improvised",
    "P": "natural",
}
"""Recording-condition letter of a file name -> the ``conditions`` value that selects it."""

CATEGORIES: dict[str, str] = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad", "O": "other", "X": "no agreement"}
"""Consensus category codes of the label file (``O`` and ``X`` are not classes)."""
LABELS: dict[str, str] = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
CLASS_NAMES: tuple[str, ...] = ("angry", "happy", "neutral", "sad")
LABEL_FILES: tuple[str, ...] = ("Evalution.txt", "Evaluation.txt")
"""The consensus label file: misspelt ``Evalution.txt`` in some releases, ``Evaluation.txt`` in others."""

LAYOUT = (
    "the MSP-IMPROV folder: the consensus label file Evalution.txt (or Evaluation.txt) and the audio "
    "MSP-IMPROV-S<nn><E>-<G><0k>-<C>-<G><P><tt>.wav anywhere below it (e.g. Audio/session1/S01A/R/)"
)

# "MSP-IMPROV-S01A-F01-R-FM01": sentence 01, target emotion A, speaker F01 (session 1), condition R, turn FM01.
_NAME = re.compile(
    r"^S(?P<sentence>\d{2})(?P<target>[AHSN])-(?P<speaker>(?P<gender>[FM])0(?P<session>\d))"
    r"-(?P<condition>[TRSP])-(?P<turn>[FM]{2}\d{2,})$"
)
# "UTD-IMPROV-S01A-F01-R-FM01.avi; A; A:3.000000; V:2.000000; D:3.000000 ; N:4.000000;"
_CLIP_LINE = re.compile(r"^UTD-IMPROV-(?P<rest>\S+?)\.avi\s*;\s*(?P<code>[^;\s]*)\s*;(?P<ratings>.*)$")
_RATING = re.compile(r"\b([AVDN])\s*:\s*(\d+(?:\.\d*)?|NaN)")


class MSPImprovDataModule(CorpusDataModule):
    """MSP-IMPROV: 8,438 turns of six dyadic sessions (one actress and one actor each, ``F01``..``M06``).

    ``root`` is the MSP-IMPROV folder. The consensus label file (``Evalution.txt``, misspelt in some releases,
    or ``Evaluation.txt``; searched for below ``root``) has one block per clip, separated by blank lines: a
    first line ``UTD-IMPROV-<name>.avi; <category>; A:..; V:..; D:.. ; N:..;`` with the consensus category and
    mean ratings, then one line per rater (never read as a clip). The clip's audio is ``MSP-IMPROV-<name>.wav``,
    found anywhere below ``root`` (the release nests it as ``session<k>/S<nn><E>/<C>/``, under ``Audio/`` in
    some copies); macOS ``._*`` copies are ignored.

    * The label is the raters' consensus category, not the target emotion ``E`` the actors were asked for:
      angry (A), happy (H), neutral (N), sad (S); other (O) and no agreement (X) are dropped and counted in
      :attr:`dropped` (``describe()["dropped_labels"]``).
    * Speaker = ``F01`` .. ``M06``; session = ``ses01`` .. ``ses06`` (``F0k`` and ``M0k`` form session ``k``), so
      ``loso`` validates on the session partner and ``lsso`` has 6 folds.
    * ``sentence`` = ``S<nn>`` for the target-sentence conditions (T target-improvised, R target-read,
      S other-improvised): every actor says the same 20 sentences, which the run's stamp reports as
      ``shared_sentences``. Natural interaction (P) turns have none.
    * A labelled clip without an audio file, and an audio file whose name does not follow the pattern, are
      skipped with a warning and counted (``describe()["skipped"]``); an audio file without a label is not
      part of the labelled corpus and is only counted (:attr:`unlabelled`).

    Real corpus: 8,438 turns; the 4-class consensus set commonly used has 7,798 (neutral 3,477, happy 2,644,
    sad 885, angry 792).


    Of the inherited arguments: ``root`` is the MSP-IMPROV folder; ``loso`` has 12 folds and ``lsso`` 6;
    ``strict`` also fails on missing or misnamed audio files.

    Args:
        conditions: recording conditions to use: ``target_improvised`` (T), ``target_read`` (R),
            ``other_improvised`` (S), ``natural`` (P, the free interaction between the scenes); ``None``: all.
    """

    corpus_name = "msp_improv"
    manifest_args = ("conditions",)

    def __init__(
        self,
        conditions: list[Condition] | None = None,
        **kwargs: Any,
    ) -> None:
        if conditions is not None:
            unknown = [c for c in conditions if c not in CONDITIONS.values()]
            if unknown:
                raise ValueError(f"unknown condition(s) {unknown}; expected some of {list(CONDITIONS.values())}")
            if not conditions:
                raise ValueError("conditions must name at least one condition (or be None for all)")
        super().__init__(**kwargs)
        self.conditions: list[str] | None = sorted(set(conditions)) if conditions is not None else None
        self.dropped: dict[str, int] = {}
        self.unlabelled = 0

    @property
    def class_names(self) -> list[str]:
        """angry, happy, neutral, sad."""
        return list(CLASS_NAMES)

    @property
    def label_map(self) -> dict[str, str]:
        """Consensus category -> class name (O and X are dropped)."""
        return dict(LABELS)

    def label_file(self, root: Path) -> Path:
        """The consensus label file below ``root`` (:func:`msp_improv_label_file`)."""
        return msp_improv_label_file(root)

    def load_records(self) -> list[Utterance]:
        """Parses the consensus label file and pairs each labelled clip with its wav (:func:`parse_msp_improv`)."""
        report = self.parse_report()
        records = parse_msp_improv(self.require_root(LAYOUT), conditions=self.conditions, corpus=self.corpus_name,
                                   report=report)  # fmt: skip
        self.unlabelled = report.ignored.get("unlabelled", 0)
        self.dropped = report.dropped
        if self.dropped:
            log.info("MSP-IMPROV: dropped consensus categories outside the classes: %s", self.dropped)
        return records


def msp_improv_label_file(root: Path) -> Path:
    """The consensus label file: ``Evalution.txt`` or ``Evaluation.txt`` in root, else the first below it.

    Raises:
        CorpusNotFoundError: neither spelling exists below root.
    """
    for name in LABEL_FILES:
        if (root / name).is_file():
            return root / name
    found = sorted(
        (p for name in LABEL_FILES for p in root.rglob(name) if p.is_file()),
        key=lambda p: (len(p.relative_to(root).parts), str(p)),
    )
    if not found:
        raise CorpusNotFoundError(
            f"no consensus label file {' or '.join(LABEL_FILES)} in or below {root}; expected {LAYOUT}"
        )
    if len(found) > 1:
        log.warning("MSP-IMPROV: several label files below %s; using %s", root, found[0])
    return found[0]


def _audio_index(root: Path, report: ParseReport) -> dict[str, Path]:
    """Every ``MSP-IMPROV-*.wav`` below root by name stem; misnamed wavs are skipped (and counted)."""
    index: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(".wav"):  # macOS ._ copies, video, text
                continue
            path = Path(folder) / name
            stem = name[: -len(".wav")]
            if not stem.startswith("MSP-IMPROV-") or _NAME.match(stem[len("MSP-IMPROV-") :]) is None:
                report.skip(path, "the name does not follow MSP-IMPROV-S<nn><E>-<G><0k>-<C>-<G><P><tt>.wav")
                continue
            if stem in index:
                report.skip(path, f"a second copy of {index[stem]}")
                continue
            index[stem] = path
    return index


def parse_msp_improv(
    root: Path,
    *,
    conditions: Sequence[Condition] | None = None,
    corpus: str = "msp_improv",
    report: ParseReport | None = None,
) -> list[Utterance]:
    """Parses MSP-IMPROV's consensus label file and pairs each labelled clip with its wav.

    The rules are :class:`MSPImprovDataModule`'s.

    Args:
        root: the corpus folder (the label file in or below it, the ``MSP-IMPROV-*.wav`` files below it).
        conditions: the recording conditions to keep (default: all).
        corpus: the corpus name stored in every record.
        report: collects skipped files, dropped categories (``dropped``) and the number of wavs without a label
            (``ignored["unlabelled"]``); default: a fresh :class:`~ser_lightning.data.manifest.ParseReport`.

    Returns:
        The labelled clips with an audio file, in label-file order.

    Raises:
        CorpusNotFoundError: no label file or no audio file.
        ManifestError: the label file is malformed, a clip is labelled twice, or no clip is left.
    """
    report = report if report is not None else ParseReport()
    label_file = msp_improv_label_file(root)
    audio = _audio_index(root, report)
    if not audio:
        raise CorpusNotFoundError(f"no MSP-IMPROV-*.wav audio file below {root}; expected {LAYOUT}")
    wanted = set(conditions or CONDITIONS.values())
    dropped: Counter[str] = Counter()
    records: list[Utterance] = []
    labelled: set[str] = set()
    for lineno, clip in parse_evaluation(label_file):
        stem = f"MSP-IMPROV-{clip['name']}"
        if stem in labelled:
            raise ManifestError(f"{label_file}:{lineno}: clip {clip['name']} is labelled twice")
        labelled.add(stem)
        fields = _NAME.match(clip["name"])
        assert fields is not None  # checked by parse_evaluation
        condition = CONDITIONS[fields["condition"]]
        if condition not in wanted:
            continue
        label = LABELS.get(clip["code"])
        if label is None:
            dropped[clip["code"]] += 1
            continue
        wav = audio.get(stem)
        if wav is None:
            report.skip(
                f"{stem}.wav",
                f"labelled '{clip['code']}' in {label_file}:{lineno} but no such audio file below {root}",
            )
            continue
        records.append(
            Utterance(
                path=str(wav.resolve()),
                label=label,
                speaker=fields["speaker"],
                session=f"ses{int(fields['session']):02d}",
                sentence="" if fields["condition"] == "P" else f"S{fields['sentence']}",
                corpus=corpus,
                utt_id=stem,
                extra={
                    "gender": fields["gender"],
                    "condition": condition,
                    "target_emotion": LABELS[fields["target"]],
                    "code": clip["code"],
                    **{k: clip[k] for k in ("arousal", "valence", "dominance", "naturalness")},
                },
            )
        )
    unlabelled = sum(1 for stem in audio if stem not in labelled)
    if unlabelled:
        report.ignored["unlabelled"] = unlabelled
        log.info("MSP-IMPROV: %d audio files below %s have no label in %s", unlabelled, root, label_file)
    report.dropped.update(sorted(dropped.items()))
    if not records:
        raise ManifestError(f"{label_file}: no clip of {sorted(wanted)} with a label among {list(CLASS_NAMES)}")
    return records


def parse_evaluation(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Reads the clip lines of the MSP-IMPROV consensus label file.

    Blocks are separated by blank lines; a block's first line names the clip and its consensus category
    (``UTD-IMPROV-S01A-F01-R-FM01.avi; A; A:3.000000; V:2.000000; D:3.000000 ; N:4.000000;``), the rater lines
    that follow (``<rater>; Angry; <secondary>; A:..; V:..; D:..; N:..;``) are not read.

    Args:
        path: the label file.

    Returns:
        ``(line number, fields)`` per clip; fields: ``name`` (``S01A-F01-R-FM01``), ``code`` (A H N S O X),
        ``arousal``, ``valence``, ``dominance``, ``naturalness`` (mean ratings as written, ``NaN`` or empty when
        absent).

    Raises:
        ManifestError: a block's first line is not a clip line, a clip name is malformed or a category code is
            unknown (naming file and line).
    """
    clips = []
    in_block = False
    for lineno, raw in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line:
            in_block = False
            continue
        if in_block:  # rater lines
            continue
        in_block = True
        match = _CLIP_LINE.match(line)
        if match is None:
            raise ManifestError(
                f"{path}:{lineno}: expected a clip line 'UTD-IMPROV-<name>.avi; <category>; A:..; V:..; D:.. ; N:..;' "
                f"at the start of a block, got {line[:80]!r}"
            )
        if _NAME.match(match["rest"]) is None:
            raise ManifestError(
                f"{path}:{lineno}: malformed clip name UTD-IMPROV-{match['rest']}.avi "
                "(expected UTD-IMPROV-S<nn><E>-<G><0k>-<C>-<G><P><tt>.avi)"
            )
        code = match["code"]
        if code not in CATEGORIES:
            raise ManifestError(
                f"{path}:{lineno}: unknown label code {code!r} (expected one of {', '.join(CATEGORIES)})"
            )
        ratings = dict(_RATING.findall(match["ratings"]))
        clips.append(
            (
                lineno,
                {
                    "name": match["rest"],
                    "code": code,
                    "arousal": ratings.get("A", ""),
                    "valence": ratings.get("V", ""),
                    "dominance": ratings.get("D", ""),
                    "naturalness": ratings.get("N", ""),
                },
            )
        )
    return clips
