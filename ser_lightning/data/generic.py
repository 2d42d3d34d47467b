"""A corpus described by a CSV manifest: the way to bring one's own data."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ser_lightning.audio import WaveformAugmentation
from ser_lightning.data.base import SERDataModule
from ser_lightning.data.manifest import Utterance, read_manifest_csv, unique
from ser_lightning.data.splits import Protocol
from ser_lightning.errors import CorpusNotFoundError, ManifestError


class ManifestDataModule(SERDataModule):
    """A corpus listed in a CSV file: one's own data.

    Columns ``path,label,speaker`` are required; ``session``, ``sentence``, ``duration``, ``utt_id`` are
    optional; other columns are kept as metadata. Relative audio paths are resolved against ``root``
    (default: the manifest's folder).

    Args:
        manifest: the CSV file.
        classes: the classes in label order; utterances of other labels are dropped (and counted in the
            log). Default: every label in the manifest, sorted.
        corpus: a name for the corpus in results and logs.
        root: folder that relative audio paths are relative to.
        batch_size: training batch size (per device).
        eval_batch_size: evaluation batch size; defaults to ``batch_size``.
        num_workers: DataLoader worker processes.
        sample_rate: sample rate the audio is resampled to.
        protocol: ``loso``, ``lsso``, ``kfold`` or ``holdout``.
        fold: which fold of the protocol.
        num_folds: folds of ``kfold``.
        holdout_fractions: train/validation/test fractions of ``holdout``.
        speaker_dependent: split utterances instead of speakers (``kfold``/``holdout``; stamped in the run).
        group_by: unit of ``kfold``/``holdout``: ``speaker``, ``session`` or ``auto`` (sessions if any).
        seed: seed of the fold shuffles.
        segment_seconds: random training crop length in seconds (``None``: whole utterances).
        predict_paths: audio files or folders to predict on (default: the test split).
        strict: fail on the first unreadable/empty audio file instead of skipping (and counting) it.
        cache_manifest: cache the parsed corpus, keyed by its files' sizes and modification times.
        pin_memory: pin batches in page-locked memory.
        augmentation: a waveform augmentation applied on the fly to the training split only (e.g.
            ``ser_lightning.augment.Recipe`` with ``name: sp``; see ``configs/augment/``); evaluation audio is
            never augmented.
        vad_mode: WebRTC VAD aggressiveness 0-3: trim non-speech from every utterance of every split (seed 002);
            ``None``: off.
    """

    def __init__(
        self,
        manifest: str,
        classes: list[str] | None = None,
        corpus: str = "manifest",
        root: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        sample_rate: int = 16000,
        protocol: Protocol = "loso",
        fold: int = 0,
        num_folds: int = 5,
        holdout_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
        speaker_dependent: bool = False,
        group_by: Literal["auto", "speaker", "session"] = "auto",
        seed: int = 0,
        segment_seconds: float | None = None,
        predict_paths: list[str] | None = None,
        strict: bool = False,
        cache_manifest: bool = True,
        pin_memory: bool = False,
        augmentation: WaveformAugmentation | None = None,
        vad_mode: int | None = None,
    ) -> None:
        super().__init__(
            root=root,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            sample_rate=sample_rate,
            protocol=protocol,
            fold=fold,
            num_folds=num_folds,
            holdout_fractions=holdout_fractions,
            speaker_dependent=speaker_dependent,
            group_by=group_by,
            seed=seed,
            segment_seconds=segment_seconds,
            predict_paths=predict_paths,
            strict=strict,
            cache_manifest=cache_manifest,
            pin_memory=pin_memory,
            augmentation=augmentation,
            vad_mode=vad_mode,
        )
        self.manifest = Path(manifest).expanduser()
        if not self.manifest.is_file():
            raise CorpusNotFoundError(
                f"manifest {self.manifest} does not exist; expected a CSV file with "
                "columns path,label,speaker[,session,sentence,duration,utt_id]"
            )
        self.corpus_name = corpus
        self._records: list[Utterance] | None = None
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError(f"classes has duplicates: {classes}")
        self._class_names = list(classes) if classes else unique(self._read(), "label")
        if len(self._class_names) < 2:
            raise ManifestError(f"{self.manifest}: need at least two classes, found {self._class_names}")

    def _read(self) -> list[Utterance]:
        if self._records is None:
            self._records = read_manifest_csv(self.manifest, corpus=self.corpus_name, root=self.root)
        return self._records

    @property
    def class_names(self) -> list[str]:
        """Classes in label order."""
        return self._class_names

    def load_records(self) -> list[Utterance]:
        """The manifest's utterances whose label is a class."""
        keep = set(self._class_names)
        records = [r for r in self._read() if r.label in keep]
        if not records:
            raise ManifestError(f"{self.manifest}: no utterance has a label among {self._class_names}")
        return records
