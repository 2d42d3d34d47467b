"""The utterance dataset: soundfile reading, mono mix-down, resampling, training crops, and collation."""

from __future__ import annotations

import logging
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
    """Utterances as waveforms, with optional random training crops and waveform augmentation.

    Args:
        records: the utterances of one split.
        class_names: class names; ``label`` is the index of a record's label in this list.
        sample_rate: sample rate of the returned waveforms.
        segment_samples: if given, waveforms longer than this are randomly cropped to it (training only).
        augment: a waveform augmentation applied before cropping (training only).
    """

    def __init__(
        self,
        records: Sequence[Utterance],
        class_names: Sequence[str],
        sample_rate: int,
        segment_samples: int | None = None,
        augment: WaveformTransform | None = None,
    ) -> None:
        self.records = list(records)
        self.class_index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted({r.label for r in self.records} - set(self.class_index))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the class names {list(class_names)}")
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        self.augment = augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, object]:
        record = self.records[index]
        audio = read_audio(record.path, self.sample_rate)
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
