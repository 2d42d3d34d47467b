"""The manifest cache: a parsed, checked corpus kept under ``<cache>/manifests/`` until one of its files changes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ser_lightning.audio import cache_root
from ser_lightning.data.manifest import Utterance

log = logging.getLogger(__name__)

MANIFEST_CACHE_VERSION = 3
"""Bumped whenever what is cached changes (2: every file decoded and checked; near-silent files listed; 3: RECOLA
records carry their official partition)."""
_HASH_SPAN = 1 << 20


def audio_checksum(path: str | Path) -> str:
    """A content hash of an audio file: its size and its first and last MiB (blake2b).

    Cheap on multi-GB corpora, and equal for byte-identical copies under different names, which is how
    duplicated recordings appear in released corpora.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with path.open("rb") as handle:
        digest.update(handle.read(_HASH_SPAN))
        if size > 2 * _HASH_SPAN:
            handle.seek(-_HASH_SPAN, os.SEEK_END)
            digest.update(handle.read(_HASH_SPAN))
        elif size > _HASH_SPAN:
            digest.update(handle.read())
    return digest.hexdigest()


def corpus_fingerprint(root: Path, header: Sequence[object]) -> str:
    """A key that changes whenever a file under ``root`` (its name, size or modification time) or ``header`` does.

    Args:
        root: the corpus folder.
        header: what else the parsed corpus depends on (the DataModule's class, class names, parsing arguments).
    """
    root = root.resolve()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([MANIFEST_CACHE_VERSION, *header], default=str).encode())
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def files_fingerprint(paths: Sequence[str | Path], header: Sequence[object]) -> str:
    """A key that changes whenever one of ``paths`` (its size, modification time or presence) or ``header`` does.

    The key of a corpus listed file by file (a CSV manifest) rather than found under a root folder.

    Args:
        paths: every file the parsed corpus is read from (the manifest itself and each audio file).
        header: what else the parsed corpus depends on.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([MANIFEST_CACHE_VERSION, *header], default=str).encode())
    for path in paths:
        try:
            st = os.stat(path)
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def manifest_cache_path(corpus: str, key: str) -> Path:
    """The cache file of a corpus' parsed manifest under a fingerprint ``key``."""
    return cache_root() / "manifests" / f"{corpus}-{key}.json"


@dataclass
class CachedManifest:
    """A parsed corpus as cached: its checked records, the files skipped and the labels dropped.

    Args:
        records: the checked utterances.
        skipped: ``{"path", "reason"}`` of every file left out.
        dropped: label -> number of utterances dropped because their label is not a class.
        quiet: ``{"path", "peak_dbfs"}`` of every near-silent file kept.
    """

    records: list[Utterance]
    skipped: list[dict[str, str]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    quiet: list[dict[str, object]] = field(default_factory=list)


def read_manifest_cache(path: Path) -> CachedManifest | None:
    """The cached manifest at ``path``; ``None`` when there is none or it is unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        return CachedManifest(
            records=[Utterance(**r) for r in payload["records"]],
            skipped=list(payload["skipped"]),
            dropped=dict(payload.get("dropped") or {}),
            quiet=list(payload.get("quiet") or []),
        )
    except (KeyError, TypeError, json.JSONDecodeError):
        log.warning("ignoring the unreadable manifest cache %s", path)
        return None


def write_manifest_cache(path: Path, manifest: CachedManifest) -> None:
    """Writes a manifest to ``path`` atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        payload = {"records": [asdict(r) for r in manifest.records], "skipped": manifest.skipped,
                   "dropped": dict(manifest.dropped), "quiet": list(manifest.quiet)}  # fmt: skip
        json.dump(payload, handle)
    os.replace(tmp, path)
