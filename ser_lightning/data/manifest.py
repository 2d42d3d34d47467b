"""Utterance records: the one format every corpus is parsed into."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ser_lightning.audio import read_csv_rows
from ser_lightning.errors import ManifestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    """One utterance of a corpus.

    Args:
        path: absolute path of the audio file.
        label: class name (after the corpus' label map).
        speaker: speaker id, unique within the corpus.
        session: recording session id (empty when the corpus has none).
        sentence: scripted sentence / text id (empty when unknown).
        duration: duration in seconds (0 when unknown).
        corpus: corpus name.
        utt_id: utterance id, unique within the corpus.
        checksum: hash of the audio file's bytes (filled in by the DataModule; finds duplicated recordings).
        extra: further metadata (gender, intensity, continuous targets, ...).
    """

    path: str
    label: str
    speaker: str
    session: str = ""
    sentence: str = ""
    duration: float = 0.0
    corpus: str = ""
    utt_id: str = ""
    checksum: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, object]:
        """Returns the record as a flat JSON-serialisable dict."""
        return asdict(self)


_REQUIRED = ("path", "label", "speaker")
_KNOWN = {f.name for f in fields(Utterance)} - {"extra"}


def read_manifest_csv(path: str | Path, corpus: str = "", root: str | Path | None = None) -> list[Utterance]:
    """Reads a CSV manifest into utterance records.

    Columns ``path``, ``label`` and ``speaker`` are required; ``session``, ``sentence``, ``duration``,
    ``utt_id`` are optional; any other column goes into ``extra``. Relative paths are resolved against
    ``root`` (default: the manifest's folder).

    Args:
        path: the CSV file.
        corpus: corpus name stored in every record.
        root: folder that relative audio paths are relative to.

    Returns:
        The records, in file order.

    Raises:
        ManifestError: a required column is missing or a row is malformed (names file and line).
    """
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = handle.readline()
    columns = next(csv.reader([header]), []) if header.strip() else []
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {missing}; found {columns or None}")
    records = []
    for line, row in enumerate(read_csv_rows(path), start=2):
        if any(not (row.get(c) or "").strip() for c in _REQUIRED):
            raise ManifestError(f"{path}:{line}: empty value in one of the columns {list(_REQUIRED)}")
        try:
            duration = float(row.get("duration") or 0.0)
        except ValueError as err:
            raise ManifestError(f"{path}:{line}: duration {row.get('duration')!r} is not a number") from err
        audio = Path(row["path"])
        if not audio.is_absolute():
            audio = base / audio
        records.append(
            Utterance(
                path=str(audio),
                label=row["label"].strip(),
                speaker=row["speaker"].strip(),
                session=(row.get("session") or "").strip(),
                sentence=(row.get("sentence") or "").strip(),
                duration=duration,
                corpus=corpus,
                utt_id=(row.get("utt_id") or audio.stem).strip(),
                extra={k: v for k, v in row.items() if k not in _KNOWN and k is not None},
            )
        )
    return records


def count_by(records: Iterable[Utterance], key: str) -> dict[str, int]:
    """Counts records by an attribute, sorted by key.

    Args:
        records: utterance records.
        key: attribute name (``label``, ``speaker``, ``session``, ...).

    Returns:
        A sorted mapping value -> count.
    """
    counts: dict[str, int] = {}
    for record in records:
        value = str(getattr(record, key))
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def unique(records: Sequence[Utterance], key: str) -> list[str]:
    """Sorted unique values of an attribute over records."""
    return sorted({str(getattr(r, key)) for r in records})


SkipFn = Callable[[str | Path, str], None]
"""Called with a file and the reason it is left out of a corpus."""


class ParseReport:
    """What a corpus parser leaves out, collected while it runs: skipped files, dropped labels, other tallies.

    Every native-layout parser (``parse_emodb``, ``parse_iemocap``, ...) takes one, so that it can be called
    without a DataModule; a DataModule passes ``on_skip=self.skip`` (which raises under ``strict``).

    Args:
        on_skip: called for every skipped file instead of the default (a warning naming it, and an entry in
            :attr:`skipped`).
    """

    def __init__(self, on_skip: SkipFn | None = None) -> None:
        self.on_skip = on_skip
        self.skipped: list[dict[str, str]] = []
        """``{"path", "reason"}`` of every skipped file (when ``on_skip`` is not given)."""
        self.dropped: dict[str, int] = {}
        """Utterances left out because their label is not a class: label -> count."""
        self.ignored: dict[str, int] = {}
        """Files that are not part of what is read (e.g. RAVDESS' song and video files): kind -> count."""
        self.irregular: dict[str, int] = {}
        """Irregular names or layouts that were kept (e.g. eNTERFACE's): kind -> count."""

    def skip(self, path: str | Path, reason: str) -> None:
        """Reports a file left out of the corpus.

        Args:
            path: the file.
            reason: why it is left out.
        """
        if self.on_skip is not None:
            self.on_skip(path, reason)
            return
        log.warning("skipping %s: %s", path, reason)
        self.skipped.append({"path": str(path), "reason": reason})

    def drop(self, label: str) -> None:
        """Counts an utterance left out because its label is not a class."""
        self.dropped[label] = self.dropped.get(label, 0) + 1

    def ignore(self, kind: str) -> None:
        """Counts a file that is not part of what is read."""
        self.ignored[kind] = self.ignored.get(kind, 0) + 1

    def flag(self, kind: str) -> None:
        """Counts an irregular name or layout that was kept."""
        self.irregular[kind] = self.irregular.get(kind, 0) + 1
