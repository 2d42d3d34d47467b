"""The cache of synthetic corpora: folder naming, verification, locking and on-demand generation.

:func:`ensure_corpus` is the entry point used by the toolkit: it returns a verified corpus from the cache
(:func:`ser_lightning.audio.cache_root` unless told otherwise), generating it when it is missing or damaged —
in a fresh subprocess running ``python -m ser_lightning.synth`` (for reproducible audio), under a file lock,
into a temporary sibling folder renamed into place when complete. :func:`verify_corpus` checks a corpus folder
against its ``corpus.json``; :func:`read_manifest` reads its manifest.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from ser_lightning.audio import cache_root, read_csv_rows
from ser_lightning.synth.design import emotions_key, get_voice_set, resolve_emotions
from ser_lightning.synth.plan import (
    GENERATOR_VERSION,
    INFO_FILE,
    MANIFEST_COLUMNS,
    MANIFEST_FILE,
    SAMPLE_RATE,
    CorpusGenerationError,
)
from ser_lightning.synth.render import sha256_file

__all__ = ["corpus_dir_name", "ensure_corpus", "read_manifest", "verify_corpus"]

logger = logging.getLogger(__name__)


def read_manifest(corpus_dir: str | Path) -> list[dict[str, str]]:
    """Read ``manifest.csv`` of a corpus folder.

    Args:
        corpus_dir: The corpus folder.

    Returns:
        One dict per utterance, keyed by :data:`MANIFEST_COLUMNS` (values are strings).
    """
    return read_csv_rows(Path(corpus_dir) / MANIFEST_FILE)


def verify_corpus(
    corpus_dir: str | Path,
    mode: Literal["quick", "full"] = "quick",
    expected: dict[str, Any] | None = None,
) -> list[str]:
    """Check a corpus folder and return the problems found (an empty list means it is complete and intact).

    ``quick`` checks that ``corpus.json`` exists and matches ``expected``, that the manifest is the one
    ``corpus.json`` describes, and that every file in the manifest exists with its recorded size. ``full``
    additionally checks the SHA-256 of every audio file.

    Args:
        corpus_dir: The corpus folder.
        mode: ``"quick"`` or ``"full"``.
        expected: Values that ``corpus.json`` must contain (e.g. ``{"size": "tiny", "seed": 0}``).

    Returns:
        Human-readable problem descriptions (at most a handful of per-file problems are listed).
    """
    if mode not in ("quick", "full"):
        raise ValueError(f"verify mode must be 'quick' or 'full', not {mode!r}")
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        return [f"corpus folder {corpus_dir} does not exist"]
    info_path = corpus_dir / INFO_FILE
    if not info_path.is_file():
        return [f"{INFO_FILE} is missing (incomplete or interrupted generation)"]
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{INFO_FILE} is unreadable: {exc}"]
    problems = [
        f"{INFO_FILE} has {key}={info.get(key)!r}, expected {value!r}"
        for key, value in (expected or {}).items()
        if info.get(key) != value
    ]
    if problems:
        return problems
    manifest = corpus_dir / MANIFEST_FILE
    if not manifest.is_file():
        return [f"{MANIFEST_FILE} is missing"]
    if sha256_file(manifest) != info.get("manifest_sha256"):
        return [f"{MANIFEST_FILE} does not match the checksum in {INFO_FILE}"]
    try:
        rows = read_manifest(corpus_dir)
        with open(manifest, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, csv.Error) as exc:
        return [f"{MANIFEST_FILE} is unreadable: {exc}"]
    if tuple(header) != MANIFEST_COLUMNS:
        return [f"{MANIFEST_FILE} has columns {header}, expected {list(MANIFEST_COLUMNS)}"]
    if len(rows) != info.get("counts", {}).get("utterances"):
        return [f"{MANIFEST_FILE} has {len(rows)} rows, {INFO_FILE} says {info.get('counts', {}).get('utterances')}"]
    sizes: dict[str, int] = info.get("file_bytes", {})
    bad: list[str] = []
    for row in rows:
        rel = row["path"]
        path = corpus_dir / rel
        try:
            n_bytes = path.stat().st_size
        except OSError:
            bad.append(f"{rel} is missing")
            continue
        if n_bytes == 0 or n_bytes != sizes.get(rel):
            bad.append(f"{rel} has {n_bytes} bytes, expected {sizes.get(rel)}")
        elif mode == "full" and sha256_file(path) != row["sha256"]:
            bad.append(f"{rel} does not match its SHA-256")
    if bad:
        shown = bad[:5]
        more = f" (and {len(bad) - len(shown)} more)" if len(bad) > len(shown) else ""
        problems.append(f"{len(bad)} damaged audio file(s): " + "; ".join(shown) + more)
    return problems


def corpus_dir_name(
    size: str = "default", seed: int = 0, voice_set: str = "en", emotions: Sequence[str] | None = None
) -> str:
    """Return the cache folder name of a corpus.

    Example: ``synthetic-en-default-seed0-neu-hap-ang-sad-v1``.
    """
    get_voice_set(voice_set).size(size)  # validate
    return (
        f"synthetic-{voice_set}-{size}-seed{int(seed)}-{emotions_key(resolve_emotions(emotions))}-v{GENERATOR_VERSION}"
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (``fcntl.flock``); waits for other holders."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX platforms
        logger.warning("file locking is not available on this platform; concurrent generation is not guarded")
        yield
        return
    with open(path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("Waiting for another process holding %s", path)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_tree(path: Path) -> None:
    """Remove a folder: rename it out of the way first, so that a partial removal is never mistaken for it."""
    if not path.exists():
        return
    trash = path.with_name(f".{path.name}.trash-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _run_generator(out_dir: Path, size: str, seed: int, voice_set: str, emotions: Sequence[str]) -> None:
    """Run the generator in a fresh subprocess (for reproducible audio)."""
    cmd = [
        sys.executable,
        "-m",
        "ser_lightning.synth",
        "--out",
        str(out_dir),
        "--size",
        size,
        "--seed",
        str(int(seed)),
        "--voice-set",
        voice_set,
        "--emotions",
        ",".join(emotions),
    ]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # parallelism comes from worker processes
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        stderr = proc.stderr.strip()
        tail = stderr[-4000:] if stderr else "(no output)"
        raise CorpusGenerationError(
            f"synthetic corpus generation failed (exit code {proc.returncode}): {' '.join(cmd)}\n{tail}"
        )
    if proc.stderr.strip():
        logger.debug("generator output:\n%s", proc.stderr.strip())


def ensure_corpus(
    size: str = "default",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    voice_set: str = "en",
    emotions: Sequence[str] | None = None,
    verify: Literal["quick", "full"] = "quick",
) -> Path:
    """Return the folder of a verified synthetic corpus, generating it if needed.

    The corpus lives in ``<cache_dir>/synthetic-<voice_set>-<size>-seed<seed>-<emotions>-v<version>``. If it
    exists and passes :func:`verify_corpus`, it is returned as is; if it is damaged, a warning says what is
    wrong and it is regenerated. Generation runs in a fresh subprocess into a temporary sibling folder that
    is renamed into place when complete, under an exclusive file lock, so concurrent callers (DDP ranks,
    parallel test workers) never generate at the same time: the second one waits and then finds the corpus.

    Args:
        size: Corpus size (``tiny``, ``default``, ``large``).
        seed: Corpus seed.
        cache_dir: Cache folder; default ``$SER_LIGHTNING_CACHE`` or ``~/.cache/ser_lightning``.
        voice_set: Voice set (``en``, ``de``).
        emotions: Emotions in label order (default: neutral, happy, angry, sad).
        verify: ``"quick"`` (sizes) or ``"full"`` (SHA-256 of every file) verification of a cached corpus.

    Returns:
        The corpus folder.

    Raises:
        CorpusGenerationError: If generation fails (the message includes the generator's stderr) or the
            generated corpus does not verify.
    """
    names = resolve_emotions(emotions)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    name = corpus_dir_name(size=size, seed=seed, voice_set=voice_set, emotions=names)
    target = cache / name
    expected = {
        "generator_version": GENERATOR_VERSION,
        "size": size,
        "seed": int(seed),
        "voice_set": voice_set,
        "emotions": list(names),
        "sample_rate": SAMPLE_RATE,
    }
    cache.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache / f".{name}.lock"):
        if target.exists():
            problems = verify_corpus(target, mode=verify, expected=expected)
            if not problems:
                logger.debug("Using cached synthetic corpus %s", target)
                return target
            logger.warning("Synthetic corpus %s is damaged, regenerating it: %s", target, "; ".join(problems))
            _remove_tree(target)
        for stale in sorted(cache.glob(f".{name}.tmp-*")) + sorted(cache.glob(f".{name}.trash-*")):
            logger.info("Removing leftover %s of an interrupted generation", stale)
            shutil.rmtree(stale, ignore_errors=True)

        logger.info("Generating synthetic corpus %s (runs once, then cached)", target)
        start = time.perf_counter()
        tmp = cache / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _run_generator(tmp, size, seed, voice_set, names)
            problems = verify_corpus(tmp, mode="full", expected=expected)
            if problems:
                raise CorpusGenerationError(f"generated corpus does not verify: {'; '.join(problems)}")
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("Generated synthetic corpus %s in %.1f s", target, time.perf_counter() - start)
        return target
