"""The utterance dataset: audio read by :func:`ser_lightning.audio.read_audio`, training crops, and collation."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ser_lightning.audio import WaveformAugmentation, WaveformTransform, read_audio
from ser_lightning.data.manifest import Utterance
from ser_lightning.data.sampling import decode_key, item_generator, item_seed, seeded_global_rngs

log = logging.getLogger(__name__)

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

    Attributes:
        seed: base seed of the per-item randomness. An epoch key of
            :class:`~ser_lightning.data.sampling.EpochSampler` (what the training loader yields) draws the crop
            start and the augmentation seed from ``(seed, epoch, index)``; a plain index draws them from the global
            random generators.
    """

    seed: int = 0

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
        epoch, index = decode_key(index, len(self.records))
        record = self.records[index]
        audio = read_audio(record.path, self.sample_rate)
        if self.preprocess is not None:
            audio = np.asarray(self.preprocess(audio, self.sample_rate), dtype=np.float32)
        if self.augment is not None:
            audio = np.asarray(augment_item(self.augment, audio, self.sample_rate, self.seed, epoch, index),
                               dtype=np.float32)  # fmt: skip
        waveform = torch.from_numpy(audio)
        if self.segment_samples is not None and waveform.numel() > self.segment_samples:
            crop_rng = None if epoch is None else item_generator(self.seed, epoch, index, stream=1)
            start = int(torch.randint(0, waveform.numel() - self.segment_samples + 1, (), generator=crop_rng).item())
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


def augment_item(
    augment: WaveformTransform, audio: np.ndarray, sample_rate: int, seed: int, epoch: int | None, index: int
) -> np.ndarray:
    """Applies a training augmentation to item ``index``: seeded by ``(seed, epoch, index)`` when ``epoch`` is known.

    A :class:`~ser_lightning.audio.WaveformAugmentation` gets the seed through its deterministic
    :meth:`~ser_lightning.audio.WaveformAugmentation.augment`; any other transform runs with the global generators
    seeded for the call (and restored after it). Without an epoch (a plain index) the transform is simply called.
    """
    if epoch is None:
        return augment(audio, sample_rate)
    seed_ = item_seed(seed, epoch, index, stream=0)
    if isinstance(augment, WaveformAugmentation):
        return augment.augment(audio, sample_rate, seed_)
    with seeded_global_rngs(seed_):
        return augment(audio, sample_rate)


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
