"""The embedded synthetic corpus with continuous arousal/valence targets every 40 ms (RECOLA-shaped batches)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ser_lightning.audio import WaveformTransform
from ser_lightning.data.manifest import Utterance
from ser_lightning.data.recola import (
    ContinuousDataset,
    ContinuousTargets,
    Target,
    check_frame_aligned,
    collate_continuous,
    resolve_targets,
)
from ser_lightning.data.synthetic import SyntheticDataModule


class ConstantTargetDataset(ContinuousDataset):
    """:class:`~ser_lightning.data.recola.ContinuousDataset` whose targets are per-utterance constants.

    The value of target ``t`` is ``float(record.extra[t])`` on every frame that overlaps the utterance's audio
    (0 when the record has no such value, e.g. files given to ``predict``). Cropping, reading and the item
    layout are RECOLA's.

    Args:
        records: the utterances of one split.
        target_names: the targets, in column order (manifest columns, e.g. ``arousal``, ``valence``).
        sample_rate: sample rate of the returned waveforms.
        target_rate_hz: frame rate of the targets.
        segment_seconds: if given, utterances longer than this are randomly cropped to it (training only).
        augment: a length-preserving waveform augmentation (training only).
    """

    def __init__(
        self,
        records: Sequence[Utterance],
        target_names: Sequence[str],
        sample_rate: int,
        target_rate_hz: float = 25.0,
        segment_seconds: float | None = None,
        augment: WaveformTransform | None = None,
    ) -> None:
        # The records name no rating files, so the base reads none; the constant targets replace them.
        super().__init__(records, target_names, sample_rate, target_rate_hz, segment_seconds, augment)
        self.targets = [self._constant_targets(r) for r in self.records]

    def _constant_targets(self, record: Utterance) -> np.ndarray:
        values = np.asarray([float(record.extra.get(name) or 0.0) for name in self.target_names], dtype=np.float32)
        # One frame more than the manifest's (rounded) duration implies; __getitem__ cuts to the audio read.
        frames = math.ceil(record.duration * self.target_rate_hz - 1e-6) + 1 if record.duration > 0 else 0
        return np.repeat(values[None, :], frames, axis=0)


class SyntheticContinuousDataModule(ContinuousTargets, SyntheticDataModule):
    """The embedded synthetic corpus (eSpeak NG) for regression: continuous arousal and valence every 40 ms.

    The same utterances, speakers and protocols as :class:`~ser_lightning.data.SyntheticDataModule`; each
    emotion profile of the synthesiser has an arousal and a valence value in ``[-1, 1]`` (neutral 0/0, happy
    0.6/0.8, angry 0.8/-0.6, sad -0.6/-0.7, ...), written to the manifest's ``arousal``/``valence`` columns.
    The targets of an utterance are that value on every ``1 / target_rate_hz`` frame of its audio, so batches
    have RECOLA's layout (:func:`~ser_lightning.data.recola.collate_continuous`: ``targets`` ``[B, frames, K]``,
    ``target_length``) and :attr:`target_names` names the targets. Training crops (``segment_seconds``) start on
    a frame boundary with their targets cropped alike; evaluation uses whole utterances.


    Of the inherited arguments: ``segment_seconds`` is rounded to whole target frames; ``augmentation`` must
    preserve the length (noise, reverberation, pitch shift...: no speed perturbation or time stretch);
    ``vad_mode`` must stay ``None`` (trimming would misalign the frame-level targets; rejected).

    Args:
        targets: the continuous targets, in column order (default: arousal, valence).
        target_rate_hz: frame rate of the targets (25 Hz: RECOLA's 40 ms).
    """

    manifest_args = ("targets",)

    def __init__(
        self,
        targets: list[Target] | None = None,
        target_rate_hz: float = 25.0,
        **kwargs: Any,
    ) -> None:
        selected = resolve_targets(targets, target_rate_hz)
        super().__init__(**kwargs)
        check_frame_aligned(type(self).__name__, self.augmentation, self.vad_mode)
        self.targets = selected
        self.target_rate_hz = float(target_rate_hz)

    def make_dataset(self, split: str, records: list[Utterance]) -> Dataset:
        """Waveforms with constant per-frame targets; training crops of ``segment_seconds``."""
        training = split == "train"
        return ConstantTargetDataset(
            records,
            self.targets,
            self.sample_rate,
            self.target_rate_hz,
            segment_seconds=self.segment_seconds if training else None,
            augment=self.configure_train_transform() if training else None,
        )

    collate_fn = staticmethod(collate_continuous)
