"""Utterance records: the one format every corpus is parsed into."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ser_lightning.errors import ManifestError


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
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        records = []
        for line, row in enumerate(reader, start=2):
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
