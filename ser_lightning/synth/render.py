"""Rendering the planned utterances of the synthetic corpus to WAV files, a manifest and ``corpus.json``.

:func:`generate_corpus` plans the corpus (:mod:`ser_lightning.synth.plan`), synthesises each speaker's
utterances with eSpeak NG (:mod:`ser_lightning.synth.espeak`) in its own fresh worker process, post-processes
them (:mod:`ser_lightning.synth.dsp`) and writes the folder described in :mod:`ser_lightning.synth.plan`.
It is normally run in a fresh process by :func:`ser_lightning.synth.cache.ensure_corpus`, through the command
line (``python -m ser_lightning.synth``), because eSpeak keeps state between utterances.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_lightning.audio import resample
from ser_lightning.synth.design import get_voice_set, resolve_emotions
from ser_lightning.synth.dsp import to_pcm16, trim_silence, wav_bytes
from ser_lightning.synth.espeak import ESpeakSynthesizer, shutdown_engine, utterances_in_process
from ser_lightning.synth.plan import (
    GENERATOR_VERSION,
    INFO_FILE,
    MANIFEST_COLUMNS,
    MANIFEST_FILE,
    SAMPLE_RATE,
    UtterancePlan,
    plan_corpus,
)

__all__ = ["generate_corpus", "sha256_file"]

logger = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    """Return the SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _variant_name(base: str, lines: Sequence[str]) -> str:
    """Name of the eSpeak variant of one voice quality: a stable hash of the base variant and its lines."""
    return "u" + hashlib.sha1("\n".join([base, *lines]).encode()).hexdigest()[:12]


def _synthesize_speaker(
    args: tuple[Path, list[UtterancePlan]],
) -> tuple[str, list[dict[str, str]], dict[str, int], int]:
    """Synthesise and write the utterances of one speaker; runs in a fresh worker process.

    The worker either inherits (fork) a freshly initialised, unused library from the parent, or
    initialises its own (spawn): both start from the same state.

    Returns:
        The eSpeak version, the manifest rows, the file sizes and the number of samples written.
    """
    out_dir, plans = args
    try:
        if utterances_in_process():
            logger.warning(
                "synthesising in a process that already synthesised speech: the audio may differ from a "
                "fresh-process generation"
            )
        synth = ESpeakSynthesizer()
        rows: list[dict[str, str]] = []
        file_bytes: dict[str, int] = {}
        n_samples = 0
        registered: set[str] = set()
        for plan in plans:
            variant = _variant_name(plan.speaker.variant, plan.variant_lines)
            if variant not in registered:
                synth.add_variant(variant, list(plan.variant_lines), base=plan.speaker.variant)
                registered.add(variant)
            audio = synth.synthesize(
                plan.text,
                voice=f"{plan.speaker.voice}+{variant}",
                rate=plan.rate,
                volume=plan.volume,
                pitch=plan.pitch,
                pitch_range=plan.pitch_range,
                word_gap=plan.word_gap,
                seed=plan.espeak_seed,
            )
            audio = trim_silence(audio, synth.sample_rate)
            audio = resample(audio, synth.sample_rate, SAMPLE_RATE)
            pcm = to_pcm16(audio, plan.level_db, plan.noise_floor_db, plan.noise_seed)
            data = wav_bytes(pcm, SAMPLE_RATE)
            path = out_dir / plan.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            file_bytes[plan.relpath] = len(data)
            n_samples += len(pcm)
            rows.append(
                {
                    "utt_id": plan.utt_id,
                    "path": plan.relpath,
                    "label": plan.emotion.name,
                    "speaker": plan.speaker.speaker_id,
                    "gender": plan.speaker.gender,
                    "session": plan.speaker.session,
                    "sentence": plan.sentence_id,
                    "duration": f"{len(pcm) / SAMPLE_RATE:.4f}",
                    "arousal": f"{plan.emotion.arousal:.2f}",
                    "valence": f"{plan.emotion.valence:.2f}",
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        return synth.version, rows, file_bytes, n_samples
    finally:
        shutdown_engine()


def _default_workers(n_tasks: int) -> int:
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        n_cpus = os.cpu_count() or 1
    return max(1, min(n_cpus, n_tasks, 8))


def generate_corpus(
    out_dir: Path,
    size: str = "default",
    seed: int = 0,
    voice_set: str = "en",
    emotions: Sequence[str] | None = None,
    workers: int | None = None,
) -> Path:
    """Generate the corpus into ``out_dir``.

    Each speaker is synthesised in its own fresh worker process, in a fixed order (emotions, then
    sentences), because eSpeak keeps some state between utterances: the output is therefore byte-identical
    for the same parameters, whatever the number of workers. ``corpus.json`` is written last.

    Args:
        out_dir: Target folder; must not exist or be empty.
        size: Corpus size name (``tiny``, ``default``, ``large``).
        seed: Corpus seed.
        voice_set: Voice set name (``en``, ``de``).
        emotions: Emotions in label order (default: neutral, happy, angry, sad).
        workers: Number of worker processes (default: available CPUs, at most 8).

    Returns:
        ``out_dir``.

    Raises:
        FileExistsError: If ``out_dir`` is not empty.
        ser_lightning.synth.espeak.SynthesisError: If synthesis fails.
    """
    out_dir = Path(out_dir)
    names = resolve_emotions(emotions)
    vset = get_voice_set(voice_set)
    csize = vset.size(size)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"output folder {out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    plans = plan_corpus(size=size, seed=seed, voice_set=voice_set, emotions=names)
    speakers = vset.speakers[: csize.n_speakers]
    n_workers = workers if workers is not None else _default_workers(len(speakers))
    # A fresh process per speaker. With "fork" (safe in the generator's own single-threaded process), this
    # process initialises eSpeak once without synthesising anything, and every worker starts from a copy of
    # that pristine state; with "spawn" (no fork, threads running, or eSpeak already used here), every
    # worker initialises its own. Both give the same audio.
    fork_ok = (
        "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and utterances_in_process() == 0
    )
    ctx = multiprocessing.get_context("fork" if fork_ok else "spawn")
    tasks = [(out_dir, [p for p in plans if p.speaker.speaker_id == spk.speaker_id]) for spk in speakers]
    if fork_ok:
        import soundfile  # noqa: F401  (imported once here, inherited by the workers)

        resample(np.zeros(1, np.float32), 22050, SAMPLE_RATE)  # designs the filter once, inherited by the workers
        ESpeakSynthesizer()  # initialise the library (and its private data folder) once
    try:
        with ctx.Pool(processes=max(1, n_workers), maxtasksperchild=1) as pool:
            results = pool.map(_synthesize_speaker, tasks, chunksize=1)
    finally:
        if fork_ok:
            shutdown_engine()

    rows = [row for _, spk_rows, _, _ in results for row in spk_rows]
    file_bytes = {k: v for _, _, sizes, _ in results for k, v in sizes.items()}
    total_samples = sum(n for _, _, _, n in results)
    espeak_version = results[0][0] if results else "unknown"

    manifest = out_dir / MANIFEST_FILE
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    info: dict[str, Any] = {
        "name": "ser_lightning synthetic emotional speech (eSpeak NG)",
        "note": "Synthetic stand-in generated offline with eSpeak NG; not a measure of real SER accuracy.",
        "generator_version": GENERATOR_VERSION,
        "size": size,
        "seed": int(seed),
        "voice_set": vset.name,
        "language": vset.language,
        "emotions": list(names),
        "sample_rate": SAMPLE_RATE,
        "espeak_version": espeak_version,
        "espeakng_loader_version": _package_version("espeakng-loader"),
        "counts": {
            "utterances": len(rows),
            "speakers": len(speakers),
            "sessions": len({s.session for s in speakers}),
            "sentences": csize.n_sentences,
            "per_label": dict(Counter(r["label"] for r in rows)),
        },
        "total_duration_s": round(total_samples / SAMPLE_RATE, 3),
        "manifest_sha256": sha256_file(manifest),
        "file_bytes": file_bytes,
    }
    tmp_json = out_dir / f".{INFO_FILE}.tmp"
    tmp_json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_json, out_dir / INFO_FILE)
    logger.info(
        "Generated %d utterances (%.1f min of audio) in %s in %.2f s with %d worker(s)",
        len(rows),
        total_samples / SAMPLE_RATE / 60.0,
        out_dir,
        time.perf_counter() - start,
        n_workers,
    )
    return out_dir


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
