"""A corpus described by a CSV manifest: the way to bring one's own data."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ser_lightning.data.cache import files_fingerprint
from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import Utterance, read_manifest_csv, unique
from ser_lightning.errors import CorpusNotFoundError, ManifestError


class ManifestDataModule(CorpusDataModule):
    """A corpus listed in a CSV file: one's own data.

    Columns ``path,label,speaker`` are required; ``session``, ``sentence``, ``duration``, ``utt_id`` are
    optional; other columns are kept as metadata. Relative audio paths are resolved against ``root``
    (default: the manifest's folder).

    The manifest cache key sees every input: the CSV's path, size, modification time and content hash, and the
    size and modification time of every audio file it lists (so editing e.g. its speaker column re-parses it).

    Args:
        manifest: the CSV file.
        classes: the classes in label order; utterances of other labels are dropped (and counted in the
            log). Default: every label in the manifest, sorted.
        corpus: a name for the corpus in results and logs.
    """

    def __init__(
        self,
        manifest: str,
        classes: list[str] | None = None,
        corpus: str = "manifest",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest = Path(manifest).expanduser()
        if not self.manifest.is_file():
            raise CorpusNotFoundError(
                f"manifest {self.manifest} does not exist; expected a CSV file with "
                "columns path,label,speaker[,session,sentence,duration,utt_id]"
            )
        self.corpus_name = corpus
        self._records: list[Utterance] | None = None
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError(f"classes has duplicates: {classes}")
        self._class_names = list(classes) if classes else unique(self._read(), "label")
        if len(self._class_names) < 2:
            raise ManifestError(f"{self.manifest}: need at least two classes, found {self._class_names}")

    def _fingerprint(self) -> str | None:
        """The manifest cache key: the CSV (path, size, mtime, content hash), its audio files, the parsing arguments."""
        csv_bytes = self.manifest.read_bytes()
        root = Path(self.root).expanduser() if self.root else self.manifest.parent
        header = [*self._fingerprint_header(root), str(self.manifest.resolve()),
                  hashlib.blake2b(csv_bytes, digest_size=16).hexdigest()]  # fmt: skip
        return files_fingerprint([str(self.manifest.resolve()), *(r.path for r in self._read())], header)

    def _read(self) -> list[Utterance]:
        if self._records is None:
            self._records = read_manifest_csv(self.manifest, corpus=self.corpus_name, root=self.root)
        return self._records

    @property
    def class_names(self) -> list[str]:
        """Classes in label order."""
        return self._class_names

    def load_records(self) -> list[Utterance]:
        """The manifest's utterances whose label is a class."""
        keep = set(self._class_names)
        records = [r for r in self._read() if r.label in keep]
        if not records:
            raise ManifestError(f"{self.manifest}: no utterance has a label among {self._class_names}")
        return records
