"""The utterance dataset: audio read by :func:`ser_lightning.audio.read_audio`, training crops, and collation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from ser_lightning.audio import WaveformAugmentation, WaveformTransform, check_waveform, read_audio
from ser_lightning.data.manifest import Utterance
from ser_lightning.data.sampling import decode_key, item_generator, item_seed, seeded_global_rngs
from ser_lightning.errors import AudioReadError

log = logging.getLogger(__name__)


class ItemFeatures(Protocol):
    """Fixed-size features a model computes from each item's final waveform, in the loader's worker processes.

    A model that does not learn its front-end (e.g. :class:`~ser_lightning.models.svm.OpenSmileSVM`) hands one to
    the DataModule (:meth:`~ser_lightning.data.base.SERDataModule.use_item_features`), so that extraction runs in
    the DataLoader workers and a cache can be consulted per item.
    """

    def __call__(self, waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, bool]:
        """Returns ``(features [D] float32, whether they came from a cache)``; raises ``ValueError`` on failure."""
        ...


def failed_item(record: Utterance, index: int, err: AudioReadError) -> dict[str, object]:
    """The marker a dataset returns for an utterance it cannot read: the collate function drops it and reports it.

    Args:
        record: the utterance.
        index: its index in the dataset.
        err: why it cannot be read.

    Returns:
        ``{"failed": True, "path", "utt_id", "index", "reason", "kind"}``.
    """
    reason = str(err).split(": ", 1)[-1] if str(err).startswith(str(record.path)) else str(err)
    return {"failed": True, "path": record.path, "utt_id": record.utt_id, "index": index, "reason": reason,
            "kind": getattr(err, "kind", "unreadable")}  # fmt: skip


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
        min_seconds: the shortest usable utterance (see :func:`~ser_lightning.audio.check_waveform`).
        strict: raise on an utterance that cannot be read instead of returning a marker item.

    An utterance that cannot be read when an item is fetched (a file that broke after setup; empty, non-finite,
    too short or silent audio) does not raise: the item is a marker (:func:`failed_item`) that
    :func:`collate_utterances` drops and lists in the batch's ``failed``, so that the main process counts it
    (worker processes' state does not survive them). Under ``strict`` it raises :class:`AudioReadError`.

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
        min_seconds: float = 0.0,
        strict: bool = False,
    ) -> None:
        self.records = list(records)
        self.min_seconds = min_seconds
        self.strict = strict
        self.keep_empty_batches = False
        """Whether a batch whose every item failed is still yielded by the loader (``predict`` lists them)."""
        self.read_failures: dict[str, dict[str, str]] = {}
        """Utterances that failed when read (path -> ``{"path", "reason", "kind"}``), filled in the main process
        by the loader from the batches' ``failed`` lists."""
        self.class_index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted({r.label for r in self.records} - set(self.class_index))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the class names {list(class_names)}")
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        self.augment = augment
        self.preprocess = preprocess
        self.item_features: ItemFeatures | None = None
        """If set, each item also carries ``features`` computed from its final waveform (see :class:`ItemFeatures`)."""

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, object]:
        epoch, index = decode_key(index, len(self.records))
        record = self.records[index]
        try:
            audio = read_audio(record.path, self.sample_rate)
            check_waveform(record.path, audio, self.sample_rate, self.min_seconds)
        except AudioReadError as err:
            if self.strict:
                raise AudioReadError(f"{err} (strict=True; set strict=False to skip such files)", err.kind) from err
            return failed_item(record, index, err)
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
        extra: dict[str, object] = {}
        if self.item_features is not None:
            try:
                features, cached = self.item_features(waveform.numpy(), self.sample_rate)
            except ValueError as err:
                err = AudioReadError(f"{record.path}: feature extraction failed: {err}", "features")
                if self.strict:
                    raise err from None
                return failed_item(record, index, err)
            extra = {"features": torch.tensor(np.asarray(features, dtype=np.float32)), "features_cached": bool(cached)}
        return {
            "waveform": waveform,
            "length": waveform.numel(),
            "label": self.class_index[record.label],
            "speaker": record.speaker,
            "utt_id": record.utt_id,
            "path": record.path,
            "index": index,
            **extra,
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
        lists ``speaker``, ``utt_id``, ``path``, and ``failed``: the ``{"path", "utt_id", "reason", "kind"}`` of
        the marker items (:func:`failed_item`) that were dropped. ``B`` is 0 when every item failed. Items with
        :class:`ItemFeatures` add ``features`` [B, D] float32 and ``features_cached`` [B] bool.
    """
    failed = [{k: str(item[k]) for k in ("path", "utt_id", "reason", "kind")} for item in items if item.get("failed")]
    items = [item for item in items if not item.get("failed")]
    lengths = torch.tensor([int(item["length"]) for item in items], dtype=torch.long)
    waveform = torch.zeros(len(items), int(lengths.max()) if items else 0)
    for row, item in enumerate(items):
        waveform[row, : int(item["length"])] = item["waveform"]
    extra: dict[str, object] = {}
    if items and "features" in items[0]:
        extra = {"features": torch.stack([item["features"] for item in items]),
                 "features_cached": torch.tensor([bool(item["features_cached"]) for item in items])}  # fmt: skip
    return {
        "waveform": waveform,
        "length": lengths,
        "label": torch.tensor([int(item["label"]) for item in items], dtype=torch.long),
        "index": torch.tensor([int(item["index"]) for item in items], dtype=torch.long),
        "speaker": [item["speaker"] for item in items],
        "utt_id": [item["utt_id"] for item in items],
        "path": [item["path"] for item in items],
        "failed": failed,
        **extra,
    }
