"""The DataModule bases: records -> split -> datasets -> loaders, and one corpus split by a protocol.

:class:`SERDataModule` is what the CLI builds; :class:`CorpusDataModule` adds a corpus root and its protocol, and
every single-corpus DataModule derives from it.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import soundfile as sf
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from ser_lightning.audio import AUDIO_SUFFIXES, VIDEO_SUFFIXES, WaveformAugmentation, WaveformTransform, read_av_audio
from ser_lightning.augment.vad import VoiceActivityTrimmer
from ser_lightning.data.cache import (
    CachedManifest,
    audio_checksum,
    corpus_fingerprint,
    manifest_cache_path,
    read_manifest_cache,
    write_manifest_cache,
)
from ser_lightning.data.dataset import UtteranceDataset, collate_utterances
from ser_lightning.data.manifest import ParseReport, Utterance, count_by, unique
from ser_lightning.data.sampling import EpochSampler
from ser_lightning.data.splits import Protocol, Split, make_split
from ser_lightning.errors import AudioReadError, CorpusNotFoundError, ProtocolError

log = logging.getLogger(__name__)


def augmentation_stamp(augmentation: WaveformTransform | None) -> str | None:
    """How a run's training audio was augmented, for its hyperparameters and ``results.json``.

    Args:
        augmentation: the training augmentation, or ``None``.

    Returns:
        ``None``, or the augmentation's repr (class and arguments, e.g. ``Recipe(name='sp')``).
    """
    return None if augmentation is None else repr(augmentation)


class SERDataModule(LightningDataModule, ABC):
    """Base of every DataModule: what the CLI's ``--data`` builds (``subclass_mode_data``).

    A subclass names its corpus, declares its class names, gives its utterance records (:meth:`load_records`)
    and its split (:meth:`build_split`); the base does the rest: probing and content-hashing the audio, the
    manifest cache, leakage-checked datasets, loaders, distributed evaluation samplers and the run's stamp.
    A single corpus split by a protocol derives from :class:`CorpusDataModule`.

    Args:
        batch_size: training batch size (per device).
        eval_batch_size: validation/test/predict batch size; defaults to ``batch_size``.
        num_workers: DataLoader worker processes.
        sample_rate: sample rate the audio is resampled to.
        seed: seed of the split's shuffles (the folds of a protocol, a cross-corpus draw of speakers).
        segment_seconds: if set, training waveforms longer than this are randomly cropped to it (saves reading
            and featurising audio the model's segment crop would discard). Evaluation always sees whole
            utterances.
        predict_paths: audio files or folders to predict on; by default ``predict`` runs on the test split.
        strict: fail on the first unreadable, empty or corrupt audio file instead of skipping it (skips are
            logged with the file's name and counted in ``describe`` and ``results.json``).
        cache_manifest: cache the parsed corpus (keyed by the root, the parsing arguments and every file's size
            and modification time) so that a second run starts at once.
        pin_memory: pin batches in page-locked memory (faster host-to-GPU copies).
        augmentation: a waveform augmentation applied on the fly to the training split only (e.g.
            ``ser_lightning.augment.Recipe`` with ``name: sp``; see ``configs/augment/``); validation, test and
            predict audio is never augmented. Stamped into the hyperparameters and ``results.json``.
        vad_mode: WebRTC VAD aggressiveness 0-3: trim non-speech from every utterance of every split (Pankratz et al.;
            :class:`~ser_lightning.augment.vad.VoiceActivityTrimmer`, before augmentation and cropping);
            ``None``: off.
    """

    corpus_name: str = "corpus"
    manifest_args: tuple[str, ...] = ()
    """Attributes that change what :meth:`load_records` returns (part of the manifest cache key)."""
    protocol: str = "none"
    """The name of the split's protocol (in logs and in the stamp of a run that failed before its split)."""
    fold: int = 0
    """The fold of the protocol."""

    def __init__(
        self,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        sample_rate: int = 16000,
        seed: int = 0,
        segment_seconds: float | None = None,
        predict_paths: list[str] | None = None,
        strict: bool = False,
        cache_manifest: bool = True,
        pin_memory: bool = False,
        augmentation: WaveformAugmentation | None = None,
        vad_mode: int | None = None,
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
        if augmentation is not None and not callable(augmentation):
            raise ValueError(
                f"augmentation must be a WaveformAugmentation (e.g. ser_lightning.augment.Recipe), got "
                f"{type(augmentation).__name__} {augmentation!r}"
            )
        if vad_mode is not None and (isinstance(vad_mode, bool) or vad_mode not in (0, 1, 2, 3)):
            raise ValueError(f"vad_mode must be None (off) or a WebRTC VAD aggressiveness 0-3, got {vad_mode!r}")
        # The augmentation is logged by its repr (an object does not belong in hparams.yaml).
        self.save_hyperparameters(ignore=["augmentation"])
        self.save_hyperparameters({**self.hparams, "augmentation": augmentation_stamp(augmentation)})
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.sample_rate = sample_rate
        self.seed = seed
        self.segment_seconds = segment_seconds
        self.predict_paths = predict_paths
        self.strict = strict
        self.cache_manifest = cache_manifest
        self.pin_memory = pin_memory
        self.augmentation = augmentation
        self.vad_mode = vad_mode
        self.skipped: list[dict[str, str]] = []
        self.split: Split | None = None
        self.datasets: dict[str, Dataset] = {}

    # ----------------------------------------------------------------------------------------- subclass API
    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """Class names in label-index order (the model's ``num_classes``/``class_names`` are linked to it)."""

    @property
    def label_names(self) -> list[str]:
        """The names the records' ``label`` takes (the class names; a regression corpus overrides it)."""
        return self.class_names

    label_kind = "class_names"
    """What :attr:`label_names` are, as ``describe()`` names them (``target_names`` for a regression corpus)."""

    @abstractmethod
    def load_records(self) -> list[Utterance]:
        """Parses the corpus into utterance records whose labels are among :attr:`class_names`."""

    @abstractmethod
    def build_split(self) -> Split:
        """The split of :meth:`records` into training, validation and test, checked for leakage."""

    def probe_audio(self, path: str) -> float:
        """Checks an audio file's header and returns its duration in seconds (0 when it has no frames).

        Corpora whose audio soundfile cannot read (e.g. video containers) override this.

        Raises:
            AudioReadError: the file cannot be opened as audio.
        """
        if str(path).lower().endswith(VIDEO_SUFFIXES):
            audio, rate = read_av_audio(path)
            return audio.shape[0] / rate if rate else 0.0
        try:
            info = sf.info(path)
        except Exception as err:
            raise AudioReadError(f"{path}: cannot read audio ({err})") from err
        return info.frames / info.samplerate if info.samplerate else 0.0

    def skip(self, path: str | Path, reason: str) -> None:
        """Records a file left out of the corpus, with a warning naming it (or raises under ``strict``).

        Args:
            path: the file.
            reason: why it is left out.

        Raises:
            AudioReadError: when ``strict`` is set.
        """
        if self.strict:
            raise AudioReadError(f"{path}: {reason} (strict=True; set strict=False to skip such files)")
        log.warning("skipping %s: %s", path, reason)
        self.skipped.append({"path": str(path), "reason": reason})

    def parse_report(self) -> ParseReport:
        """A collector for a corpus parser whose skipped files go through :meth:`skip`."""
        return ParseReport(on_skip=self.skip)

    def configure_train_transform(self) -> WaveformTransform | None:
        """The waveform augmentation of the training split: :attr:`augmentation` (``None`` by default)."""
        return self.augmentation

    def configure_preprocess(self) -> WaveformTransform | None:
        """The deterministic transform applied to every split's audio after reading: VAD trimming if ``vad_mode``."""
        return None if self.vad_mode is None else VoiceActivityTrimmer(mode=self.vad_mode)

    def make_dataset(self, split: str, records: list[Utterance]) -> Dataset:
        """The dataset of one split (``train``, ``val``, ``test``, ``predict``).

        The default yields class-labelled waveforms; corpora with other targets (e.g. RECOLA's continuous
        arousal/valence) override this and :attr:`collate_fn`. Only ``train`` is augmented.
        """
        preprocess = self.configure_preprocess()
        if split == "train":
            segment = round(self.segment_seconds * self.sample_rate) if self.segment_seconds else None
            return UtteranceDataset(records, self.label_names, self.sample_rate, segment,
                                    augment=self.configure_train_transform(), preprocess=preprocess)  # fmt: skip
        return UtteranceDataset(records, self.label_names, self.sample_rate, preprocess=preprocess)

    collate_fn = staticmethod(collate_utterances)

    # -------------------------------------------------------------------------------------------- derived
    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    # ------------------------------------------------------------------------------------------ manifest
    def corpus_root(self) -> Path | None:
        """The folder whose files make up the corpus (fingerprinted for the manifest cache); ``None``: no cache."""
        return None

    def _fingerprint(self) -> str | None:
        """A key that changes whenever the corpus' files or the parsing arguments change."""
        root = self.corpus_root()
        if root is None:
            return None
        header = [type(self).__module__, type(self).__qualname__, str(root.resolve()),
                  self.label_names, [repr(getattr(self, a)) for a in self.manifest_args]]  # fmt: skip
        return corpus_fingerprint(root, header)

    def records(self) -> list[Utterance]:
        """The corpus' checked utterances: parsed, audio headers probed, content-hashed, cached.

        Files that cannot be read, are empty or corrupt are skipped (see :meth:`skip`). The result is cached in
        ``<cache>/manifests/`` (:mod:`ser_lightning.data.cache`) and reused while no file under the corpus root
        changes.
        """
        key = self._fingerprint() if self.cache_manifest else None
        cache = manifest_cache_path(self.corpus_name, key) if key else None
        cached = read_manifest_cache(cache) if cache is not None else None
        if cached is not None:
            self.skipped = cached.skipped
            if cached.dropped:
                self.dropped = cached.dropped
            for item in self.skipped:
                log.warning("skipping %s: %s", item["path"], item["reason"])
            if self.skipped and self.strict:
                first = self.skipped[0]
                raise AudioReadError(f"{first['path']}: {first['reason']} (strict=True)")
            return cached.records
        self.skipped = []
        checked = []
        for record in self.load_records():
            try:
                duration = self.probe_audio(record.path)
            except AudioReadError as err:
                self.skip(record.path, str(err).split(": ", 1)[-1])
                continue
            if duration <= 0:
                self.skip(record.path, "the audio file is empty")
                continue
            checked.append(
                replace(
                    record,
                    duration=record.duration or round(duration, 4),
                    checksum=record.checksum or audio_checksum(record.path),
                )
            )
        if cache is not None:
            dropped = dict(getattr(self, "dropped", {}) or {})
            write_manifest_cache(cache, CachedManifest(checked, self.skipped, dropped))
        return checked

    # ----------------------------------------------------------------------------------------- lifecycle
    def setup(self, stage: str | None = None) -> None:
        """Loads the manifest, makes the split, checks it for leakage, and builds the datasets."""
        if self.split is None:
            self.split = self.build_split()
            stamp = self.describe()
            split_stamp = {
                k: stamp[k]
                for k in ("corpus", "speaker_independent", "shared_sentences", "test_speakers", "val_speakers", "sizes")
            }
            split_stamp["skipped_files"] = len(self.skipped)
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
        self.datasets = {name: self.make_dataset(name, part) for name, part in self.split.parts().items()}
        if stage == "predict":
            self.datasets["predict"] = self._predict_dataset()

    def describe(self) -> dict[str, object]:
        """The run's data stamp: corpus, protocol, fold, class names, split sizes and speakers, augmentation, VAD."""
        if self.split is None:
            raise RuntimeError("describe() needs setup() first")
        return {
            "corpus": self.corpus_name,
            self.label_kind: list(self.label_names),
            **self.split.stamp,
            "class_counts": {name: count_by(part, "label") for name, part in self.split.parts().items()},
            "num_speakers": {name: len(unique(part, "speaker")) for name, part in self.split.parts().items()},
            "skipped": {"count": len(self.skipped), "files": list(self.skipped)},
            "dropped_labels": dict(getattr(self, "dropped", {}) or {}),
            "augmentation": augmentation_stamp(self.augmentation),
            "vad_mode": self.vad_mode,
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
        first = self.label_names[0]  # placeholder label: predict ignores it
        return self.make_dataset("predict", [Utterance(str(p), first, "unknown", utt_id=p.stem) for p in files])

    # ---------------------------------------------------------------------------------------- dataloaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} dataset: call setup() first")
        dataset = self.datasets[split]
        training = split == "train"
        sampler = None
        seed = self._run_seed()
        trainer = self.trainer if self._trainer_attached() else None
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if training and shuffle:
            # Order and per-item randomness from (seed, epoch, index): the same after a resume (docs/resume.md).
            sampler = EpochSampler(dataset, seed=seed, num_replicas=replicas, rank=rank)
            if trainer is not None:
                # Lightning creates the loader's iterator (with workers: starts prefetching) before its first
                # set_epoch call; start at the epoch it will set, which after a resume is not 0.
                sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed)
            if hasattr(dataset, "seed"):
                dataset.seed = seed
        if not training:
            # Order evaluation by duration (less padding), and give each process a disjoint, unpadded share
            # so that distributed metrics count every utterance exactly once.
            records = getattr(dataset, "records", None)
            order = None
            if records is not None and all(r.duration > 0 for r in records):
                order = sorted(range(len(records)), key=lambda i: records[i].duration)
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
            collate_fn=self.collate_fn,
            drop_last=training and len(dataset) > self.batch_size,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            # Its own generator: creating an iterator draws the workers' base seed from it, not the global RNG.
            generator=torch.Generator().manual_seed(seed),
        )

    def _run_seed(self) -> int:
        """The run's ``seed_everything`` seed (``PL_GLOBAL_SEED``), else the split seed."""
        return int(os.environ.get("PL_GLOBAL_SEED", self.seed))

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


class CorpusDataModule(SERDataModule):
    """Base of a single corpus' DataModule: its root folder and the protocol that splits it.

    A subclass declares only its own arguments (``def __init__(self, label_set=..., **kwargs)`` /
    ``super().__init__(**kwargs)``) and parses its native layout with a plain function
    (``parse_<corpus>(root, ...) -> list[Utterance]``, testable without Lightning) that :meth:`load_records`
    calls.

    Args:
        root: where the corpus is (a corpus subclass says what it expects there).
        protocol: ``loso`` leave-one-speaker-out (validation on the session partner), ``lsso``
            leave-one-session-out, ``kfold`` speaker-grouped k-fold, ``holdout`` seeded hold-out.
        fold: which fold of the protocol (``loso``: index into the sorted speakers).
        num_folds: number of folds of ``kfold``.
        holdout_fractions: train/validation/test fractions of ``holdout``.
        speaker_dependent: split utterances instead of speakers (``kfold``/``holdout`` only). The run is then
            stamped ``speaker_independent: false`` in its hyperparameters and results.
        group_by: the unit ``kfold``/``holdout`` deal out: ``speaker``, ``session``, or ``auto`` (sessions when
            the corpus has them, so that no session is shared between training and test).
        **kwargs: the arguments of :class:`SERDataModule` (loaders, audio, augmentation, VAD, ...).
    """

    def __init__(
        self,
        root: str | None = None,
        protocol: Protocol = "loso",
        fold: int = 0,
        num_folds: int = 5,
        holdout_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
        speaker_dependent: bool = False,
        group_by: Literal["auto", "speaker", "session"] = "auto",
        **kwargs: Any,
    ) -> None:
        if fold < 0:
            raise ProtocolError(f"fold must be >= 0, got {fold}")
        super().__init__(**kwargs)
        self.root = root
        self.protocol = protocol
        self.fold = fold
        self.num_folds = num_folds
        self.holdout_fractions = tuple(holdout_fractions)
        self.speaker_dependent = speaker_dependent
        self.group_by = group_by

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

    def corpus_root(self) -> Path | None:
        """The folder whose files make up the corpus (fingerprinted for the manifest cache)."""
        if self.root and Path(self.root).expanduser().is_dir():
            return Path(self.root).expanduser()
        return None

    def build_split(self) -> Split:
        """The protocol's split of :meth:`records`, checked for leakage."""
        return make_split(
            self.records(),
            protocol=self.protocol,
            fold=self.fold,
            k=self.num_folds,
            seed=self.seed,
            holdout_fractions=self.holdout_fractions,  # type: ignore[arg-type]
            speaker_dependent=self.speaker_dependent,
            group_by=self.group_by,
        )
