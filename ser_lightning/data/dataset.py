"""The utterance dataset: soundfile reading, mono mix-down, resampling, training crops, and collation."""

from __future__ import annotations

import inspect
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset
from torchaudio import functional as taf

from ser_lightning.data.errors import AudioReadError
from ser_lightning.data.manifest import Utterance

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm")
"""Containers whose audio track is decoded with PyAV (FFmpeg libraries bundled in the wheel)."""

WaveformTransform = Callable[[np.ndarray, int], np.ndarray]
"""A waveform augmentation: ``(samples float32 [n], sample_rate) -> samples``."""


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

    This base lives beside the datasets (so that DataModules can name it without importing the augmentation
    package); the building blocks are in :mod:`ser_lightning.augment.recipes`.
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


def read_audio(path: str, sample_rate: int) -> np.ndarray:
    """Reads an audio file as mono float32 at ``sample_rate``.

    Args:
        path: the audio file (any format libsndfile reads), or a video container (:data:`VIDEO_SUFFIXES`)
            whose first audio track is decoded with PyAV.
        sample_rate: target sample rate; the file is resampled (torchaudio, band-limited sinc) if it differs.

    Returns:
        A 1-D float32 array.

    Raises:
        AudioReadError: the file cannot be read, is empty, or contains non-finite samples.
    """
    try:
        if str(path).lower().endswith(VIDEO_SUFFIXES):
            audio, rate = read_av_audio(path)
        else:
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except AudioReadError:
        raise
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError...
        raise AudioReadError(f"{path}: cannot read audio ({err})") from err
    if audio.shape[0] == 0:
        raise AudioReadError(f"{path}: the audio file is empty")
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if not np.isfinite(mono).all():
        raise AudioReadError(f"{path}: the audio contains NaN or infinite samples")
    if rate != sample_rate:
        mono = _resample(np.ascontiguousarray(mono), rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def read_av_audio(path: str) -> tuple[np.ndarray, int]:
    """Decodes the first audio track of a container (e.g. eNTERFACE's ``.avi``) with PyAV.

    Args:
        path: the container file.

    Returns:
        ``(samples [frames, channels] float32, sample_rate)``.

    Raises:
        AudioReadError: the file has no audio track or cannot be decoded.
    """
    import av

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


@lru_cache(maxsize=16)
def _gcd_rates(orig: int, new: int) -> tuple[int, int]:
    g = np.gcd(orig, new)
    return orig // g, new // g


def _resample(audio: np.ndarray, orig: int, new: int) -> np.ndarray:
    a, b = _gcd_rates(orig, new)
    return taf.resample(torch.from_numpy(audio), a, b).numpy()


class UtteranceDataset(Dataset):
    """Utterances as waveforms, with optional preprocessing, random training crops and waveform augmentation.

    Each item is read, then ``preprocess`` (e.g. voice-activity trimming, every split), then ``augment``
    (training only), then the random crop.

    Args:
        records: the utterances of one split.
        class_names: class names; ``label`` is the index of a record's label in this list.
        sample_rate: sample rate of the returned waveforms.
        segment_samples: if given, waveforms longer than this are randomly cropped to it (training only).
        augment: a waveform augmentation applied before cropping (training only).
        preprocess: a deterministic waveform transform applied right after reading (any split), e.g.
            :class:`~ser_lightning.augment.vad.VoiceActivityTrimmer`.
    """

    def __init__(
        self,
        records: Sequence[Utterance],
        class_names: Sequence[str],
        sample_rate: int,
        segment_samples: int | None = None,
        augment: WaveformTransform | None = None,
        preprocess: WaveformTransform | None = None,
    ) -> None:
        self.records = list(records)
        self.class_index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted({r.label for r in self.records} - set(self.class_index))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the class names {list(class_names)}")
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        self.augment = augment
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, object]:
        record = self.records[index]
        audio = read_audio(record.path, self.sample_rate)
        if self.preprocess is not None:
            audio = np.asarray(self.preprocess(audio, self.sample_rate), dtype=np.float32)
        if self.augment is not None:
            audio = np.asarray(self.augment(audio, self.sample_rate), dtype=np.float32)
        waveform = torch.from_numpy(audio)
        if self.segment_samples is not None and waveform.numel() > self.segment_samples:
            start = int(torch.randint(0, waveform.numel() - self.segment_samples + 1, ()).item())
            waveform = waveform[start : start + self.segment_samples]
        return {
            "waveform": waveform,
            "length": waveform.numel(),
            "label": self.class_index[record.label],
            "speaker": record.speaker,
            "utt_id": record.utt_id,
            "path": record.path,
            "index": index,
        }


def collate_utterances(items: Sequence[dict[str, object]]) -> dict[str, object]:
    """Pads waveforms with zeros to the longest in the batch and keeps their lengths.

    Args:
        items: dataset items.

    Returns:
        A batch: ``waveform`` [B, T] float32, ``length`` [B] int64, ``label`` [B] int64, ``index`` [B] int64,
        and lists ``speaker``, ``utt_id``, ``path``.
    """
    lengths = torch.tensor([int(item["length"]) for item in items], dtype=torch.long)
    waveform = torch.zeros(len(items), int(lengths.max()))
    for row, item in enumerate(items):
        waveform[row, : int(item["length"])] = item["waveform"]
    return {
        "waveform": waveform,
        "length": lengths,
        "label": torch.tensor([int(item["label"]) for item in items], dtype=torch.long),
        "index": torch.tensor([int(item["index"]) for item in items], dtype=torch.long),
        "speaker": [item["speaker"] for item in items],
        "utt_id": [item["utt_id"] for item in items],
        "path": [item["path"] for item in items],
    }
