"""Generation, caching and verification of the synthetic emotional speech corpus.

The corpus is produced with eSpeak NG (see :mod:`ser_lightning.synth.espeak`) from the design in
:mod:`ser_lightning.synth.design`. It is a synthetic stand-in that makes every pipeline runnable offline; it
is not a measure of accuracy on real emotional speech.

Layout of a corpus folder::

    <corpus>/
        wav/<speaker>/<utt_id>.wav   16 kHz, mono, 16-bit PCM
        manifest.csv                 one row per utterance (columns: MANIFEST_COLUMNS)
        corpus.json                  parameters, counts, checksums; written last (completeness marker)

:func:`ensure_corpus` is the entry point used by the toolkit: it returns a verified corpus from the cache,
generating it (in a fresh subprocess, under a file lock, atomically) when it is missing or damaged.
Command line::

    python -m ser_lightning.synth.generate --out DIR --size tiny --seed 0 [--voice-set en]
        [--emotions neutral,happy,angry,sad] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ser_lightning.audio import cache_root, read_csv_rows, resample
from ser_lightning.synth.design import (
    ALL_EMOTIONS,
    EMOTIONS,
    EmotionProfile,
    Speaker,
    emotions_key,
    get_voice_set,
    resolve_emotions,
)
from ser_lightning.synth.espeak import ESpeakSynthesizer, shutdown_engine, utterances_in_process

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_COLUMNS",
    "SAMPLE_RATE",
    "CorpusGenerationError",
    "UtterancePlan",
    "base_formants",
    "corpus_dir_name",
    "ensure_corpus",
    "generate_corpus",
    "main",
    "plan_corpus",
    "read_manifest",
    "render_variant_lines",
    "verify_corpus",
]

logger = logging.getLogger(__name__)

#: Version of the generator; part of the cache folder name. Bump it whenever the audio would change.
GENERATOR_VERSION = 1

#: Sample rate of the generated corpus (Hz).
SAMPLE_RATE = 16000

#: Columns of ``manifest.csv``, in order.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "utt_id",
    "path",
    "label",
    "speaker",
    "gender",
    "session",
    "sentence",
    "duration",
    "arousal",
    "valence",
    "sha256",
)

#: Environment variable overriding the default cache folder.

_MANIFEST = "manifest.csv"
_CORPUS_JSON = "corpus.json"
# Peak level (linear) of a neutral utterance of a speaker recorded at 0 dB gain; emotion and speaker levels are
# applied on top, and peaks are capped at _MAX_PEAK.
_REFERENCE_PEAK = 0.25
_MAX_PEAK = 0.95
# Silence trimming: frames more than _TRIM_TOP_DB below the loudest frame are silence; keep _KEEP_SILENCE s.
_TRIM_TOP_DB = 45.0
_KEEP_SILENCE = 0.1
# Tone (spectral tilt) rendering: eSpeak's default harmonic gains at these frequencies.
_TONE_POINTS = ((600, 170), (1200, 135), (2000, 110), (3000, 110))
_TILT_EXPONENT = 0.8
# Breath noise per formant (1..8) at breathiness 1.
_BREATH_SHAPE = (0, 16, 20, 22, 20, 16, 10, 5)


class CorpusGenerationError(RuntimeError):
    """Raised when the synthetic corpus cannot be generated or verified."""


@dataclass(frozen=True)
class UtterancePlan:
    """Everything needed to synthesise one utterance (the sampled, jittered parameters).

    Attributes:
        utt_id: Utterance id, ``<speaker>_<sentence>_<emotion>``.
        speaker: The speaker.
        emotion: The emotion profile.
        sentence_id: Sentence id (``s01``, ...).
        text: The sentence.
        variant_lines: eSpeak variant lines appended to the speaker's base variant (voice quality).
        rate: Speaking rate (words per minute).
        volume: eSpeak amplitude (0-200).
        pitch: eSpeak pitch (0-99).
        pitch_range: eSpeak pitch range (0-99).
        word_gap: eSpeak word gap (10 ms units).
        level_db: Output level relative to the reference peak, in dB.
        noise_floor_db: Level of the recording noise floor (RMS, dB re full scale).
        espeak_seed: Seed of eSpeak's random generators for this utterance.
        noise_seed: Seed of the recording noise floor of this utterance.
    """

    utt_id: str
    speaker: Speaker
    emotion: EmotionProfile
    sentence_id: str
    text: str
    variant_lines: tuple[str, ...]
    rate: int
    volume: int
    pitch: int
    pitch_range: int
    word_gap: int
    level_db: float
    noise_floor_db: float
    espeak_seed: int
    noise_seed: int

    @property
    def relpath(self) -> str:
        """Path of the WAV file relative to the corpus folder."""
        return f"wav/{self.speaker.speaker_id}/{self.utt_id}.wav"


# --------------------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------------------


def _tone_line(tilt: float) -> str:
    parts = []
    for freq, height in _TONE_POINTS:
        value = height * (freq / 1000.0) ** (_TILT_EXPONENT * tilt)
        parts.append(f"{freq} {int(min(255, max(1, round(value))))}")
    return "tone " + " ".join(parts)


@functools.lru_cache(maxsize=256)
def base_formants(variant: str) -> dict[int, tuple[int, int, int, int]]:
    """Formant settings of a built-in eSpeak variant: ``{formant: (freq%, height%, width%, freqadd)}``.

    Formants the variant does not set have eSpeak's defaults (100, 100, 100, 0).
    """
    import espeakng_loader

    path = Path(espeakng_loader.get_data_path()) / "voices" / "!v" / variant
    formants = {k: (100, 100, 100, 0) for k in range(9)}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("//", 1)[0].split()
        if len(line) >= 3 and line[0] == "formant":
            try:
                values = [int(v) for v in line[1:6]]
            except ValueError:
                continue
            k, rest = values[0], values[1:] + [100, 100, 0][len(values) - 2 :]
            if 0 <= k <= 8:
                formants[k] = (rest[0], rest[1], rest[2], rest[3])
    return formants


def render_variant_lines(
    speaker: Speaker,
    emotion: EmotionProfile,
    formant_shift: float,
    tilt: float,
    breathiness: float,
    roughness: int,
    flutter: int,
) -> tuple[str, ...]:
    """Render the voice-quality lines of one utterance as eSpeak variant lines.

    Args:
        speaker: The speaker (its base variant is the start of the voice file).
        emotion: The emotion (its ``extra_lines`` are appended).
        formant_shift: Total relative shift of formants 1-5 (speaker + emotion + jitter).
        tilt: Total spectral tilt (speaker + emotion + jitter).
        breathiness: Total breathiness (0 keeps the base variant's own breath setting).
        roughness: Total eSpeak roughness (0-7).
        flutter: Total eSpeak flutter.

    Returns:
        The lines, in order.
    """
    lines = []
    formants = base_formants(speaker.variant)
    for k in range(1, 6):
        freq, height, width, freqadd = formants[k]
        if freq > 0:
            lines.append(f"formant {k} {round(freq * (1.0 + formant_shift))} {height} {width} {freqadd}")
    lines += [_tone_line(tilt), f"roughness {int(roughness)}", f"flutter {int(flutter)}"]
    if breathiness > 0.0:
        values = [round(breathiness * v) for v in _BREATH_SHAPE]
        if any(values):
            lines.append("breath " + " ".join(str(v) for v in values))
    lines.extend(emotion.extra_lines)
    return tuple(lines)


def _utterance_rng(
    seed: int, voice_set: str, speaker_index: int, emotion: str, sentence_index: int
) -> np.random.Generator:
    """Independent random stream per utterance, stable when sizes or emotion subsets change."""
    key = [
        int(seed) & 0xFFFFFFFF,
        zlib.crc32(voice_set.encode()),
        speaker_index,
        ALL_EMOTIONS.index(emotion),
        sentence_index,
    ]
    return np.random.default_rng(np.random.SeedSequence(key))


def plan_corpus(
    size: str = "default", seed: int = 0, voice_set: str = "en", emotions: Sequence[str] | None = None
) -> list[UtterancePlan]:
    """Sample the parameters of every utterance, in generation order.

    Order: speakers (session order), then emotions (label order), then sentences.

    Args:
        size: Corpus size name of the voice set (``tiny``, ``default``, ``large``).
        seed: Corpus seed.
        voice_set: Voice set name (``en``, ``de``).
        emotions: Emotions in label order (default: neutral, happy, angry, sad).

    Returns:
        One :class:`UtterancePlan` per utterance.
    """
    vset = get_voice_set(voice_set)
    csize = vset.size(size)
    names = resolve_emotions(emotions)
    plans: list[UtterancePlan] = []
    for s_idx, spk in enumerate(vset.speakers[: csize.n_speakers]):
        for name in names:
            emo = EMOTIONS[name]
            for k in range(csize.n_sentences):
                rng = _utterance_rng(seed, vset.name, s_idx, name, k)
                z = rng.standard_normal(10)
                semitones = spk.pitch + emo.pitch_shift + emo.pitch_jitter * z[0]
                pitch = 50.0 + semitones * 50.0 / 12.0
                rate = spk.rate * emo.rate_factor * math.exp(emo.rate_jitter * z[1])
                prange = spk.pitch_range * emo.range_factor * math.exp(emo.range_jitter * z[2])
                level_db = spk.gain_db + emo.volume_db + emo.volume_jitter * z[3]
                # eSpeak's amplitude follows half the emotion's level change (in dB); the rest, and the
                # speaker's recording gain, is applied by the output normalisation.
                volume = 100.0 * 10.0 ** ((emo.volume_db + emo.volume_jitter * z[3]) / 40.0)
                word_gap = spk.word_gap + emo.word_gap + emo.word_gap_jitter * z[4]
                tilt = spk.tilt + emo.tilt + emo.quality_jitter * z[5]
                breath = max(0.0, spk.breathiness + emo.breathiness + emo.quality_jitter * z[6])
                rough = int(np.clip(spk.roughness + emo.roughness + round(0.6 * z[7]), 0, 7))
                flutter = int(np.clip(spk.flutter + emo.flutter + round(1.5 * z[8]), 0, 40))
                fshift = spk.formant_shift + emo.formant_shift + emo.formant_jitter * z[9]
                espeak_seed = int(rng.integers(1, 2**31 - 1))
                noise_seed = int(rng.integers(1, 2**31 - 1))
                sentence_id = vset.sentence_id(k)
                plans.append(
                    UtterancePlan(
                        utt_id=f"{spk.speaker_id}_{sentence_id}_{name}",
                        speaker=spk,
                        emotion=emo,
                        sentence_id=sentence_id,
                        text=vset.sentences[k],
                        variant_lines=render_variant_lines(spk, emo, fshift, tilt, breath, rough, flutter),
                        rate=int(np.clip(round(rate), 80, 450)),
                        volume=int(np.clip(round(volume), 20, 200)),
                        pitch=int(np.clip(round(pitch), 0, 99)),
                        pitch_range=int(np.clip(round(prange), 0, 99)),
                        word_gap=int(np.clip(round(word_gap), 0, 100)),
                        level_db=float(level_db),
                        noise_floor_db=float(spk.noise_floor_db),
                        espeak_seed=espeak_seed,
                        noise_seed=noise_seed,
                    )
                )
    return plans


# --------------------------------------------------------------------------------------------------------------
# Signal processing
# --------------------------------------------------------------------------------------------------------------


def _trim(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Trim leading/trailing silence to ``_KEEP_SILENCE`` seconds on each side (padding if there is less)."""
    frame = max(1, int(0.02 * sample_rate))
    n_frames = len(audio) // frame
    if n_frames < 2:
        return audio
    energy = np.sqrt(np.mean(audio[: n_frames * frame].astype(np.float64).reshape(n_frames, frame) ** 2, axis=1))
    peak = float(energy.max())
    if peak <= 0.0:
        return audio
    active = np.flatnonzero(energy > peak * 10.0 ** (-_TRIM_TOP_DB / 20.0))
    keep = int(_KEEP_SILENCE * sample_rate)
    onset, offset = int(active[0]) * frame, (int(active[-1]) + 1) * frame
    start, end = max(0, onset - keep), min(len(audio), offset + keep)
    # pad with silence where the synthesiser left less than `keep` samples around the speech
    return np.concatenate(
        [np.zeros(keep - (onset - start), audio.dtype), audio[start:end], np.zeros(keep - (end - offset), audio.dtype)]
    )


def _noise_floor(n_samples: int, level_db: float, seed: int) -> np.ndarray:
    """Recording noise floor: Gaussian hiss with a mild low-frequency tilt, RMS ``level_db`` dBFS."""
    white = np.random.default_rng(seed).standard_normal(n_samples + 1, dtype=np.float32)
    noise = white[1:] + np.float32(0.7) * white[:-1]
    return noise * np.float32(10.0 ** (level_db / 20.0) / math.sqrt(1.0 + 0.7**2))


def _to_pcm16(audio: np.ndarray, level_db: float, noise_floor_db: float, noise_seed: int) -> np.ndarray:
    """Peak-normalise to the utterance level (capped to avoid clipping), add the noise floor, quantise to int16."""
    peak = float(np.max(np.abs(audio)))
    if peak <= 0.0:
        raise CorpusGenerationError("silent utterance")
    target = min(_MAX_PEAK, _REFERENCE_PEAK * 10.0 ** (level_db / 20.0))
    scaled = audio * (target / peak) + _noise_floor(len(audio), noise_floor_db, noise_seed)
    return np.clip(np.round(scaled * 32767.0), -32768, 32767).astype(np.int16)


def _wav_bytes(pcm: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _variant_name(base: str, lines: Sequence[str]) -> str:
    return "u" + hashlib.sha1("\n".join([base, *lines]).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------------------


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
            audio = _trim(audio, synth.sample_rate)
            audio = resample(audio, synth.sample_rate, SAMPLE_RATE)
            pcm = _to_pcm16(audio, plan.level_db, plan.noise_floor_db, plan.noise_seed)
            data = _wav_bytes(pcm)
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

    manifest = out_dir / _MANIFEST
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
        "manifest_sha256": _sha256_file(manifest),
        "file_bytes": file_bytes,
    }
    tmp_json = out_dir / f".{_CORPUS_JSON}.tmp"
    tmp_json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_json, out_dir / _CORPUS_JSON)
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


# --------------------------------------------------------------------------------------------------------------
# Reading and verification
# --------------------------------------------------------------------------------------------------------------


def read_manifest(corpus_dir: str | Path) -> list[dict[str, str]]:
    """Read ``manifest.csv`` of a corpus folder.

    Args:
        corpus_dir: The corpus folder.

    Returns:
        One dict per utterance, keyed by :data:`MANIFEST_COLUMNS` (values are strings).
    """
    return read_csv_rows(Path(corpus_dir) / _MANIFEST)


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
    info_path = corpus_dir / _CORPUS_JSON
    if not info_path.is_file():
        return [f"{_CORPUS_JSON} is missing (incomplete or interrupted generation)"]
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{_CORPUS_JSON} is unreadable: {exc}"]
    problems = [
        f"{_CORPUS_JSON} has {key}={info.get(key)!r}, expected {value!r}"
        for key, value in (expected or {}).items()
        if info.get(key) != value
    ]
    if problems:
        return problems
    manifest = corpus_dir / _MANIFEST
    if not manifest.is_file():
        return [f"{_MANIFEST} is missing"]
    if _sha256_file(manifest) != info.get("manifest_sha256"):
        return [f"{_MANIFEST} does not match the checksum in {_CORPUS_JSON}"]
    try:
        rows = read_manifest(corpus_dir)
        with open(manifest, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, csv.Error) as exc:
        return [f"{_MANIFEST} is unreadable: {exc}"]
    if tuple(header) != MANIFEST_COLUMNS:
        return [f"{_MANIFEST} has columns {header}, expected {list(MANIFEST_COLUMNS)}"]
    if len(rows) != info.get("counts", {}).get("utterances"):
        return [f"{_MANIFEST} has {len(rows)} rows, {_CORPUS_JSON} says {info.get('counts', {}).get('utterances')}"]
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
        elif mode == "full" and _sha256_file(path) != row["sha256"]:
            bad.append(f"{rel} does not match its SHA-256")
    if bad:
        shown = bad[:5]
        more = f" (and {len(bad) - len(shown)} more)" if len(bad) > len(shown) else ""
        problems.append(f"{len(bad)} damaged audio file(s): " + "; ".join(shown) + more)
    return problems


# --------------------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------------------





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
        "ser_lightning.synth.generate",
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


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: generate a corpus into ``--out``.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0 on success).
    """
    parser = argparse.ArgumentParser(
        prog="python -m ser_lightning.synth.generate",
        description="Generate the synthetic (eSpeak NG) emotional speech corpus.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (must not exist or be empty)")
    parser.add_argument("--size", default="default", help="corpus size: tiny, default or large")
    parser.add_argument("--seed", default=0, type=int, help="corpus seed")
    parser.add_argument("--voice-set", default="en", help="voice set: en or de")
    parser.add_argument(
        "--emotions",
        default=",".join(resolve_emotions(None)),
        help=f"comma-separated emotions in label order (available: {','.join(ALL_EMOTIONS)})",
    )
    parser.add_argument("--workers", default=None, type=int, help="worker processes (default: CPUs, max 8)")
    parser.add_argument("--log-level", default="INFO", help="logging level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    generate_corpus(
        args.out,
        size=args.size,
        seed=args.seed,
        voice_set=args.voice_set,
        emotions=resolve_emotions(args.emotions),
        workers=args.workers,
    )
    return 0


if __name__ == "__main__":
    # Run the canonical module (not this ``__main__`` copy) so that worker functions pickle by their real name.
    from ser_lightning.synth.generate import main as _main

    sys.exit(_main())
