"""Leaf audio helpers shared by every package: reading, resampling, suffixes, the cache root, augmentation base.

Nothing here imports another package of the toolkit (only :mod:`ser_lightning.errors`), so ``data``, ``augment``,
``synth`` and ``callbacks`` all import from it without cycles.

- :func:`read_audio` is the one reader of audio files (soundfile; PyAV for the audio track of video containers).
- :func:`resample` is the one resampler: a polyphase FIR filter equal to :func:`scipy.signal.resample_poly`'s
  default design, computed without BLAS so that its output does not depend on threading (the embedded corpus is
  rendered with it and must be bit-reproducible).
- :func:`check_audio` decodes a whole file once and says whether it is fit for training (see
  :data:`MIN_SECONDS`, :data:`SILENCE_DBFS`, :data:`QUIET_DBFS`); :func:`check_waveform` is the same test on
  samples already read.
- :func:`cache_root` is the one cache folder (``$SER_LIGHTNING_CACHE``, else ``~/.cache/ser_lightning``).
- :class:`WaveformAugmentation` is the base of every seeded waveform augmentation.
"""

from __future__ import annotations

import csv
import functools
import inspect
import math
import os
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ser_lightning.errors import AudioReadError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm")
"""Containers whose audio track is decoded with PyAV (FFmpeg libraries bundled in the wheel)."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", *VIDEO_SUFFIXES)
"""Every suffix :func:`read_audio` reads (compared in lower case)."""

CACHE_ENV_VAR = "SER_LIGHTNING_CACHE"
"""Environment variable overriding the default cache folder."""

WaveformTransform = Callable[[np.ndarray, int], np.ndarray]
"""A waveform transform: ``(samples float32 [n], sample_rate) -> samples``."""

MIN_SECONDS = 0.1
"""Default shortest usable utterance, in seconds: shorter files are skipped (``too_short``)."""

SILENCE_DBFS = -90.0
"""A file whose peak is at or below this (dBFS: 20 log10 of the largest absolute sample, full scale 1.0) is
digital silence and is skipped (``silent``): all zeros, or at most one least-significant bit of 16-bit PCM
(-90.3 dBFS)."""

QUIET_DBFS = -60.0
"""A file whose peak is below this (but above :data:`SILENCE_DBFS`) is near-silent: it is loaded (quiet speech is
valid) with a warning and counted as ``quiet``."""

_RESAMPLE_BLOCKS = 2048  # output blocks per einsum call: bounds memory on long files


def cache_root() -> Path:
    """The toolkit's cache folder: ``$SER_LIGHTNING_CACHE`` if set, else ``~/.cache/ser_lightning``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ser_lightning"


def is_audio_path(path: str | Path) -> bool:
    """Whether ``path`` has a suffix :func:`read_audio` reads (case-insensitive)."""
    return str(path).lower().endswith(AUDIO_SUFFIXES)


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV file with a header line, as dicts of strings (the one CSV reader of manifests).

    Args:
        path: the CSV file.

    Returns:
        One dict per data row, keyed by the header's column names.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------------------------ resampling
@functools.lru_cache(maxsize=8)
def _polyphase_taps(up: int, down: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Taps of a polyphase resampler by ``up/down``.

    The filter is the one ``scipy.signal.resample_poly`` designs by default (Kaiser-windowed sinc, beta 5,
    half-length ``10 * max(up, down)``), so the output matches it to rounding error. Output sample
    ``q * up + r`` (``r < up``) is ``sum_i weights[i, r] * block_q[columns[i, r]]``, where ``block_q`` is
    ``x[q * down : q * down + width]`` of the input with ``per_phase`` zeros prepended.

    Returns:
        ``(columns, weights, width, per_phase)``; ``columns`` and ``weights`` have shape ``(per_phase, up)``.
    """
    max_rate = max(up, down)
    half_len = 10 * max_rate
    n_taps = 2 * half_len + 1
    cutoff = 1.0 / max_rate
    t = np.arange(n_taps, dtype=np.float64) - half_len
    h = cutoff * np.sinc(cutoff * t) * np.kaiser(n_taps, 5.0)
    h *= up / h.sum()  # unit DC gain after zero-stuffing by `up`
    per_phase = -(-n_taps // up)
    padded = np.zeros(per_phase * up, dtype=np.float64)
    padded[:n_taps] = h
    bank = padded.reshape(per_phase, up).T  # bank[p, i] = h[p + i * up]
    pos = np.arange(up) * down + half_len
    base, phase = pos // up, pos % up
    taps = np.arange(per_phase)[:, None]
    columns = base[None, :] - taps + per_phase
    weights = bank[phase[None, :], taps].astype(np.float32)
    return columns, weights, int(base.max()) + 1 + per_phase, per_phase


def resample(audio: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resamples a 1-D waveform from ``orig_sr`` to ``new_sr`` Hz (band-limited polyphase FIR).

    Equal to ``scipy.signal.resample_poly(audio, new_sr / g, orig_sr / g)`` (``g`` their gcd) to float32
    rounding. Computed in float32 with ``einsum`` rather than BLAS, so the result does not depend on threading,
    and in chunks, so memory stays bounded on long files.

    Args:
        audio: 1-D waveform.
        orig_sr: its sample rate.
        new_sr: the wanted sample rate.

    Returns:
        A 1-D float32 array of ``ceil(len(audio) * new_sr / orig_sr)`` samples.
    """
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if int(orig_sr) <= 0 or int(new_sr) <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return x
    g = math.gcd(int(new_sr), int(orig_sr))
    up, down = int(new_sr) // g, int(orig_sr) // g
    columns, weights, width, per_phase = _polyphase_taps(up, down)
    n_out = -(-len(x) * up // down)
    n_blocks = -(-n_out // up)
    padded = np.zeros(max((n_blocks - 1) * down + width, per_phase + len(x)), dtype=np.float32)
    padded[per_phase : per_phase + len(x)] = x
    blocks = np.lib.stride_tricks.as_strided(
        padded, shape=(n_blocks, width), strides=(down * padded.itemsize, padded.itemsize), writeable=False
    )
    out = np.empty((n_blocks, up), dtype=np.float32)
    for start in range(0, n_blocks, _RESAMPLE_BLOCKS):
        stop = min(start + _RESAMPLE_BLOCKS, n_blocks)
        out[start:stop] = np.einsum("nku,ku->nu", blocks[start:stop][:, columns], weights)
    return out.reshape(-1)[:n_out]


# --------------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class AudioCheck:
    """What :func:`check_audio` found in a usable file.

    Args:
        duration: seconds.
        peak_dbfs: the largest absolute sample in dBFS (``-inf`` never occurs: silence is an error).
    """

    duration: float
    peak_dbfs: float

    @property
    def quiet(self) -> bool:
        """Whether the file is near-silent (peak below :data:`QUIET_DBFS`): loaded, but worth a warning."""
        return self.peak_dbfs < QUIET_DBFS


def _peak_dbfs(peak: float) -> float:
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def check_waveform(
    path: str | Path, samples: np.ndarray, sample_rate: int, min_seconds: float = MIN_SECONDS
) -> AudioCheck:
    """Checks decoded samples (any shape, frames first) for what makes a file unusable.

    Args:
        path: the file, for the message.
        samples: its samples (float).
        sample_rate: their rate.
        min_seconds: the shortest usable duration.

    Returns:
        The file's duration and peak.

    Raises:
        AudioReadError: ``empty`` (no samples), ``non_finite`` (NaN or infinite samples), ``too_short`` (under
            ``min_seconds``) or ``silent`` (peak at or below :data:`SILENCE_DBFS`).
    """
    frames = samples.shape[0] if samples.ndim else 0
    if frames == 0:
        raise AudioReadError(f"{path}: the audio file is empty", kind="empty")
    if not np.isfinite(samples).all():
        raise AudioReadError(f"{path}: the audio contains NaN or infinite samples", kind="non_finite")
    duration = frames / sample_rate if sample_rate else 0.0
    return _verdict(path, duration, float(np.abs(samples).max()), min_seconds)


def _verdict(path: str | Path, duration: float, peak: float, min_seconds: float) -> AudioCheck:
    if duration < min_seconds:
        raise AudioReadError(f"{path}: too short ({duration:.3f} s < min_seconds {min_seconds:g} s)", kind="too_short")
    dbfs = _peak_dbfs(peak)
    if dbfs <= SILENCE_DBFS:
        what = "all samples are zero" if peak == 0 else f"peak {dbfs:.1f} dBFS"
        raise AudioReadError(f"{path}: digital silence ({what}; silent means peak <= {SILENCE_DBFS:g} dBFS)",
                             kind="silent")  # fmt: skip
    return AudioCheck(duration=round(duration, 4), peak_dbfs=round(dbfs, 2))


def check_audio(path: str | Path, min_seconds: float = MIN_SECONDS, block_frames: int = 1 << 20) -> AudioCheck:
    """Decodes a whole file once (in blocks, at its own rate) and checks that it is usable.

    A file is unusable when it cannot be decoded (``unreadable``), has no samples (``empty``), contains NaN or
    infinite samples (``non_finite``), is shorter than ``min_seconds`` (``too_short``) or is digital silence
    (``silent``: peak at or below :data:`SILENCE_DBFS`). A near-silent file (:attr:`AudioCheck.quiet`) is usable.

    Args:
        path: the audio file (any format libsndfile reads, or a video container).
        min_seconds: the shortest usable duration.
        block_frames: frames decoded at a time (bounds memory on long files).

    Returns:
        The file's duration and peak.

    Raises:
        AudioReadError: the file is unusable; ``kind`` says why.
    """
    if str(path).lower().endswith(VIDEO_SUFFIXES):
        audio, rate = read_av_audio(path)
        return check_waveform(path, audio, rate, min_seconds)
    peak, frames = 0.0, 0
    try:
        with sf.SoundFile(str(path)) as handle:
            rate = handle.samplerate
            while True:
                block = handle.read(block_frames, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if not np.isfinite(block).all():
                    raise AudioReadError(f"{path}: the audio contains NaN or infinite samples", kind="non_finite")
                frames += block.shape[0]
                peak = max(peak, float(np.abs(block).max()))
    except AudioReadError:
        raise
    except Exception as err:  # LibsndfileError, RuntimeError, OSError...
        raise AudioReadError(f"{path}: cannot read audio ({err})") from err
    if frames == 0:
        raise AudioReadError(f"{path}: the audio file is empty", kind="empty")
    return _verdict(path, frames / rate if rate else 0.0, peak, min_seconds)


def read_av_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decodes the first audio track of a container (e.g. eNTERFACE's ``.avi``) with PyAV.

    Args:
        path: the container file.

    Returns:
        ``(samples [frames, channels] float32, sample_rate)``.

    Raises:
        AudioReadError: the file has no audio track or cannot be decoded.
    """
    import av  # PyAV loads the FFmpeg libraries: only when a container is read

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioReadError(f"{path}: the file has no audio track")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")
            chunks = []
            rate = stream.codec_context.sample_rate or stream.rate
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except AudioReadError:
        raise
    except Exception as err:  # av.error.FFmpegError and friends
        raise AudioReadError(f"{path}: cannot decode the audio track ({err})") from err
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), int(rate or 0)
    return np.concatenate(chunks, axis=1).T.astype(np.float32), int(rate)


def read_audio(
    path: str | Path, sample_rate: int, start: float = 0.0, seconds: float | None = None
) -> np.ndarray:
    """Reads an audio file (or a window of it) as mono float32 at ``sample_rate``.

    Args:
        path: the audio file (any format libsndfile reads), or a video container (:data:`VIDEO_SUFFIXES`)
            whose first audio track is decoded with PyAV.
        sample_rate: target sample rate; the file is resampled with :func:`resample` if it differs.
        start: start of the window in seconds (only that part of a file is decoded; a container is decoded
            whole and sliced).
        seconds: length of the window in seconds (shorter at the end of the file); ``None`` reads to the end.

    Returns:
        A 1-D float32 array.

    Raises:
        AudioReadError: the file cannot be read, is empty (a whole-file read), or contains non-finite samples.
    """
    windowed = start > 0 or seconds is not None
    try:
        if str(path).lower().endswith(VIDEO_SUFFIXES):
            audio, rate = read_av_audio(path)
            first = round(start * rate)
            audio = audio[first : None if seconds is None else first + round(seconds * rate)]
        else:
            rate = sf.info(str(path)).samplerate if windowed else 0
            frames = -1 if seconds is None else round(seconds * rate)
            audio, rate = sf.read(str(path), start=round(start * rate), frames=frames, dtype="float32", always_2d=True)
    except AudioReadError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioReadError(f"{path}: cannot read audio ({err})") from err
    if audio.shape[0] == 0 and not windowed:
        raise AudioReadError(f"{path}: the audio file is empty", kind="empty")
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if not np.isfinite(mono).all():
        raise AudioReadError(f"{path}: the audio contains NaN or infinite samples", kind="non_finite")
    if rate != sample_rate and mono.size:
        mono = resample(mono, int(rate), sample_rate)
    if seconds is not None:
        mono = mono[: round(seconds * sample_rate)]
    return np.ascontiguousarray(mono, dtype=np.float32)


# -------------------------------------------------------------------------------------------- augmentation
class WaveformAugmentation(ABC):
    """A seeded, picklable waveform augmentation: ``(samples float32 [n], sample_rate) -> samples float32``.

    Subclasses implement :meth:`apply`, drawing every random number from the ``rng`` they are given, and store
    each constructor argument under its own name (the :func:`repr` and the run's stamp are built from them).

    Calling the object (what a dataset does) draws a 63-bit seed from torch's random generator of the current
    process: torch's DataLoader seeds every worker from the main process' seed, and Lightning's
    ``seed_everything(workers=True)`` (which the CLI calls) makes that reproducible, so augmented batches are the
    same on a re-run and differ between epochs and workers. :meth:`augment` is the deterministic form for a given
    seed. Because audiomentations draws from the global :mod:`random` and :mod:`numpy.random` generators, both
    are seeded from the call's generator for the duration of the call and restored afterwards.

    The building blocks are in :mod:`ser_lightning.augment.recipes`.
    """

    @abstractmethod
    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Augments one waveform.

        Args:
            samples: 1-D float32 waveform.
            sample_rate: its sample rate.
            rng: the only source of randomness to use.

        Returns:
            The augmented 1-D waveform (float32).
        """

    @property
    def preserves_length(self) -> bool:
        """Whether the output always has the input's length (continuous targets need this)."""
        return True

    def augment(self, samples: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        """Augments one waveform deterministically: the same ``seed`` gives the same output.

        Args:
            samples: 1-D waveform.
            sample_rate: its sample rate (Hz).
            seed: seed of this call's random generator (any non-negative integer).

        Returns:
            The augmented waveform, 1-D float32 and finite.

        Raises:
            ValueError: the input is not a non-empty 1-D finite signal, or the sample rate is not positive.
            RuntimeError: the augmentation produced an empty or non-finite signal.
        """
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"{self!r}: expected a non-empty 1-D waveform, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{self!r}: the waveform contains NaN or infinite samples")
        if int(sample_rate) <= 0:
            raise ValueError(f"{self!r}: sample_rate must be positive, got {sample_rate}")
        rng = np.random.default_rng(int(seed))
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(int(rng.integers(0, 2**63 - 1)))
            np.random.seed(int(rng.integers(0, 2**32 - 1)))
            out = self.apply(np.ascontiguousarray(x), int(sample_rate), rng)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        out = np.ascontiguousarray(out, dtype=np.float32)
        if out.ndim != 1 or out.size == 0:
            raise RuntimeError(f"{self!r} produced an empty or multi-dimensional signal (shape {out.shape})")
        if not np.isfinite(out).all():
            raise RuntimeError(f"{self!r} produced NaN or infinite samples")
        return out

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Augments one waveform with a seed drawn from torch's random generator (see the class docstring)."""
        seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64).item())
        return self.augment(samples, sample_rate, seed)

    def config(self) -> dict[str, object]:
        """The constructor arguments, read back from the attributes of the same names."""
        params = inspect.signature(type(self).__init__).parameters
        return {
            name: getattr(self, name)
            for name, param in params.items()
            if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD) and hasattr(self, name)
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
