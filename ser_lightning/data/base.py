"""The one DataModule base every corpus derives from: manifest -> split -> dataset -> loaders."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from ser_lightning.data.dataset import UtteranceDataset, WaveformTransform, collate_utterances
from ser_lightning.data.errors import CorpusNotFoundError, ProtocolError
from ser_lightning.data.manifest import Utterance, count_by, unique
from ser_lightning.data.splits import Protocol, Split, make_split

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class SERDataModule(LightningDataModule, ABC):
    """Base of every corpus' DataModule.

    A subclass names its corpus, declares its class names and parses its native layout into
    :class:`~ser_lightning.data.manifest.Utterance` records (:meth:`load_records`); the base does the rest:
    protocol and fold, leakage checks, datasets, loaders, distributed evaluation samplers and the run's stamp.

    Args:
        root: where the corpus is (a corpus subclass says what it expects there).
        batch_size: training batch size (per device).
        eval_batch_size: validation/test/predict batch size; defaults to ``batch_size``.
        num_workers: DataLoader worker processes.
        sample_rate: sample rate the audio is resampled to.
        protocol: ``loso`` leave-one-speaker-out (validation on the session partner), ``lsso``
            leave-one-session-out, ``kfold`` speaker-grouped k-fold, ``holdout`` seeded hold-out.
        fold: which fold of the protocol (``loso``: index into the sorted speakers).
        num_folds: number of folds of ``kfold``.
        holdout_fractions: train/validation/test fractions of ``holdout``.
        speaker_dependent: split utterances instead of speakers (``kfold``/``holdout`` only). The run is then
            stamped ``speaker_independent: false`` in its hyperparameters and results.
        seed: seed of the fold shuffles.
        segment_seconds: if set, training waveforms longer than this are randomly cropped to it (saves reading
            and featurising audio the model's segment crop would discard). Evaluation always sees whole
            utterances.
        predict_paths: audio files or folders to predict on; by default ``predict`` runs on the test split.
        pin_memory: pin batches in page-locked memory (faster host-to-GPU copies).
    """

    corpus_name: str = "corpus"

    def __init__(
        self,
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
        seed: int = 0,
        segment_seconds: float | None = None,
        predict_paths: list[str] | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError("batch sizes must be positive")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if sample_rate < 1000:
            raise ValueError(f"sample_rate {sample_rate} Hz is implausibly low")
        if segment_seconds is not None and segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
        if fold < 0:
            raise ProtocolError(f"fold must be >= 0, got {fold}")
        self.save_hyperparameters()
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.sample_rate = sample_rate
        self.protocol = protocol
        self.fold = fold
        self.num_folds = num_folds
        self.holdout_fractions = tuple(holdout_fractions)
        self.speaker_dependent = speaker_dependent
        self.seed = seed
        self.segment_seconds = segment_seconds
        self.predict_paths = predict_paths
        self.pin_memory = pin_memory
        self.split: Split | None = None
        self.datasets: dict[str, Dataset] = {}

    # ----------------------------------------------------------------------------------------- subclass API
    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """Class names in label-index order (the model's ``num_classes``/``class_names`` are linked to it)."""

    @abstractmethod
    def load_records(self) -> list[Utterance]:
        """Parses the corpus into utterance records whose labels are among :attr:`class_names`."""

    def configure_train_transform(self) -> WaveformTransform | None:
        """The waveform augmentation of the training split (none by default)."""
        return None

    # -------------------------------------------------------------------------------------------- derived
    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def require_root(self, expected: str) -> Path:
        """Returns :attr:`root` as a Path, or raises an error naming it and the layout expected there.

        Args:
            expected: a description of the expected layout, for the error message.
        """
        if not self.root:
            raise CorpusNotFoundError(
                f"{type(self).__name__} needs `root` (--data.init_args.root PATH): the folder that holds {expected}"
            )
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise CorpusNotFoundError(f"corpus root {root} does not exist or is not a folder; expected {expected}")
        return root

    # ----------------------------------------------------------------------------------------- lifecycle
    def setup(self, stage: str | None = None) -> None:
        """Loads the manifest, makes the split, checks it for leakage, and builds the datasets."""
        if self.split is None:
            records = self.load_records()
            self.split = make_split(
                records,
                protocol=self.protocol,
                fold=self.fold,
                k=self.num_folds,
                seed=self.seed,
                holdout_fractions=self.holdout_fractions,  # type: ignore[arg-type]
                speaker_dependent=self.speaker_dependent,
            )
            stamp = self.describe()
            split_stamp = {
                k: stamp[k] for k in ("corpus", "speaker_independent", "test_speakers", "val_speakers", "sizes")
            }
            # Logged with the run's hyperparameters (a speaker-dependent run says so there).
            self.save_hyperparameters({**self.hparams, "split": split_stamp})
            log.info(
                "%s %s fold %d: %s utterances (train/val/test), test speakers %s",
                self.corpus_name,
                self.protocol,
                self.fold,
                stamp["sizes"],
                stamp["test_speakers"],
            )
        names = self.class_names
        segment = round(self.segment_seconds * self.sample_rate) if self.segment_seconds else None
        self.datasets = {
            "train": UtteranceDataset(
                self.split.train, names, self.sample_rate, segment, augment=self.configure_train_transform()
            ),
            "val": UtteranceDataset(self.split.val, names, self.sample_rate),
            "test": UtteranceDataset(self.split.test, names, self.sample_rate),
        }
        if stage == "predict":
            self.datasets["predict"] = self._predict_dataset()

    def describe(self) -> dict[str, object]:
        """The run's data stamp: corpus, protocol, fold, class names, split sizes and speakers."""
        if self.split is None:
            raise RuntimeError("describe() needs setup() first")
        return {
            "corpus": self.corpus_name,
            "class_names": list(self.class_names),
            **self.split.stamp,
            "class_counts": {name: count_by(part, "label") for name, part in self.split.parts().items()},
            "num_speakers": {name: len(unique(part, "speaker")) for name, part in self.split.parts().items()},
        }

    def _predict_dataset(self) -> Dataset:
        if not self.predict_paths:
            return self.datasets["test"]
        files: list[Path] = []
        for entry in self.predict_paths:
            path = Path(entry).expanduser()
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))
            elif path.is_file():
                files.append(path)
            else:
                raise FileNotFoundError(f"predict path {path} does not exist")
        if not files:
            raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {self.predict_paths}")
        first = self.class_names[0]  # placeholder label: predict ignores it
        records = [Utterance(str(p), first, "unknown", utt_id=p.stem) for p in files]
        return UtteranceDataset(records, self.class_names, self.sample_rate)

    # ---------------------------------------------------------------------------------------- dataloaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} dataset: call setup() first")
        dataset = self.datasets[split]
        training = split == "train"
        sampler = None
        if not training:
            # Order evaluation by duration (less padding), and give each process a disjoint, unpadded share
            # so that distributed metrics count every utterance exactly once.
            records = getattr(dataset, "records", None)
            order = None
            if records is not None and all(r.duration > 0 for r in records):
                order = sorted(range(len(records)), key=lambda i: records[i].duration)
            trainer = self.trainer if self._trainer_attached() else None
            if trainer is not None and trainer.world_size > 1:
                sampler = UnrepeatedDistributedSampler(
                    dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
                )
            elif order is not None:
                sampler = order
        return DataLoader(
            dataset,
            batch_size=self.batch_size if training else self.eval_batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_utterances,
            drop_last=training and len(dataset) > self.batch_size,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
        )

    def _trainer_attached(self) -> bool:
        try:
            return self.trainer is not None
        except RuntimeError:
            return False

    def train_dataloader(self) -> DataLoader:
        """Shuffled training loader (segments cropped, augmentation applied)."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation loader (whole utterances)."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test loader (whole utterances)."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Predict loader: ``predict_paths`` if given, else the test split."""
        return self._loader("predict", shuffle=False)
