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

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from ser_lightning.audio import (
    AUDIO_SUFFIXES,
    MIN_SECONDS,
    QUIET_DBFS,
    SILENCE_DBFS,
    AudioCheck,
    WaveformAugmentation,
    WaveformTransform,
    check_audio,
)
from ser_lightning.augment.vad import VoiceActivityTrimmer
from ser_lightning.data.cache import (
    CachedManifest,
    audio_checksum,
    corpus_fingerprint,
    manifest_cache_path,
    read_manifest_cache,
    write_manifest_cache,
)
from ser_lightning.data.dataset import ItemFeatures, UtteranceDataset, collate_utterances
from ser_lightning.data.derived import DerivedAudio, apply_derived, check_splits
from ser_lightning.data.manifest import ParseReport, Utterance, count_by, unique
from ser_lightning.data.sampling import ClassBalancedSampler, EpochSampler, SkippingDataLoader
from ser_lightning.data.splits import Split
from ser_lightning.errors import AudioReadError

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
        segment_seconds: training waveforms longer than this are randomly cropped to it (saves reading and
            featurising audio the model's segment crop would discard). Default ``None``: a classifier sets it
            to its own segment when training starts (:meth:`set_training_crop`), so a data config need not
            repeat the model's segment; a value shorter than the model's segment is rejected. Evaluation
            always sees whole utterances.
        predict_paths: audio files or folders to predict on; by default ``predict`` runs on the test split.
        strict: fail on the first unusable audio file instead of skipping it. Skips are logged with the file's
            name and reason and counted in ``describe`` and ``results.json`` (``skipped``: ``count``, ``files``;
            ``skipped_by_kind``, ``skipped_at_read``); ``predict`` writes a row with ``status: error`` for each.
            A file is unusable when it cannot be decoded (``unreadable``), has no samples (``empty``), has NaN or
            infinite samples (``non_finite``), is shorter than ``min_seconds`` (``too_short``) or is digital
            silence (``silent``: peak at or below -90 dBFS). Every file is decoded once at setup (the verdict is
            cached with the manifest); a file that breaks after setup is skipped (and counted) when it is read.
        min_seconds: the shortest usable utterance in seconds. Near-silent files (peak below -60 dBFS) are kept
            with a warning and counted in ``describe()["quiet"]``: quiet speech is valid.
        cache_manifest: cache the parsed corpus (keyed by the root, the parsing arguments and every file's size
            and modification time) so that a second run starts at once.
        pin_memory: pin batches in page-locked memory (faster host-to-GPU copies).
        augmentation: a waveform augmentation applied on the fly to the training split only (e.g.
            ``ser_lightning.augment.Recipe`` with ``name: sp``; see ``configs/augment/``); validation, test and
            predict audio is never augmented. Stamped into the hyperparameters and ``results.json``.
        vad_mode: WebRTC VAD aggressiveness 0-3: trim non-speech from every utterance of every split (Pankratz et al.;
            :class:`~ser_lightning.augment.vad.VoiceActivityTrimmer`, before augmentation and cropping);
            ``None``: off.
        derived: read the training and validation audio (or the splits it names) from a derived copy of the corpus,
            e.g. noisy at a fixed SNR or enhanced (``ser_lightning.models.derive.DerivedCorpus``; the matched
            conditions of Triantafyllopoulos et al. 2019). The split is made on the source corpus; the test split
            stays clean unless named. Stamped into the hyperparameters and ``results.json``.
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
        min_seconds: float = MIN_SECONDS,
        derived: DerivedAudio | None = None,
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
        if min_seconds < 0:
            raise ValueError(f"min_seconds must be >= 0, got {min_seconds}")
        if augmentation is not None and not callable(augmentation):
            raise ValueError(
                f"augmentation must be a WaveformAugmentation (e.g. ser_lightning.augment.Recipe), got "
                f"{type(augmentation).__name__} {augmentation!r}"
            )
        if vad_mode is not None and (isinstance(vad_mode, bool) or vad_mode not in (0, 1, 2, 3)):
            raise ValueError(f"vad_mode must be None (off) or a WebRTC VAD aggressiveness 0-3, got {vad_mode!r}")
        if derived is not None:
            if not isinstance(derived, DerivedAudio):
                raise ValueError(
                    f"derived must be a DerivedAudio (e.g. ser_lightning.models.derive.DerivedCorpus), got "
                    f"{type(derived).__name__} {derived!r}"
                )
            check_splits(derived.splits)
        # The augmentation and derivation are logged by their descriptions (objects do not belong in hparams.yaml).
        self.save_hyperparameters(ignore=["augmentation", "derived"])
        self.save_hyperparameters({**self.hparams, "augmentation": augmentation_stamp(augmentation),
                                   "derived": None if derived is None else derived.describe()})  # fmt: skip
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
        self.min_seconds = min_seconds
        self.derived = derived
        self.skipped: list[dict[str, str]] = []
        self.quiet: list[dict[str, object]] = []
        """Near-silent files that were kept: ``{"path", "peak_dbfs"}``."""
        self._read_failures: dict[str, dict[str, str]] = {}
        self.split: Split | None = None
        self.datasets: dict[str, Dataset] = {}
        self.item_features: ItemFeatures | None = None
        self.keep_all_training = False
        """Whether the training loader keeps a last partial batch (set by :meth:`use_item_features`)."""
        self.class_balanced = False

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

    def probe_audio(self, path: str) -> AudioCheck:
        """Decodes an audio file once and checks that it is usable (:func:`~ser_lightning.audio.check_audio`).

        Corpora whose audio neither soundfile nor PyAV reads override this.

        Returns:
            The file's duration and peak level.

        Raises:
            AudioReadError: the file is unusable (``kind``: ``unreadable``, ``empty``, ``non_finite``,
                ``too_short``, ``silent``).
        """
        return check_audio(path, self.min_seconds)

    def skip(self, path: str | Path, reason: str, kind: str = "parse") -> None:
        """Records a file left out of the corpus, with a warning naming it (or raises under ``strict``).

        Args:
            path: the file.
            reason: why it is left out.
            kind: the reason's category (``parse`` for a parser's skips; an audio check's ``kind``).

        Raises:
            AudioReadError: when ``strict`` is set.
        """
        if self.strict:
            raise AudioReadError(f"{path}: {reason} (strict=True; set strict=False to skip such files)", kind)
        log.warning("skipping %s: %s", path, reason)
        self.skipped.append({"path": str(path), "reason": reason, "kind": kind})

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
        checks = {"min_seconds": self.min_seconds, "strict": self.strict}
        if split == "train":
            segment = round(self.segment_seconds * self.sample_rate) if self.segment_seconds else None
            return UtteranceDataset(records, self.label_names, self.sample_rate, segment,
                                    augment=self.configure_train_transform(), preprocess=preprocess,
                                    **checks)  # fmt: skip
        return UtteranceDataset(records, self.label_names, self.sample_rate, preprocess=preprocess, **checks)

    collate_fn = staticmethod(collate_utterances)

    def set_training_crop(self, seconds: float, needed_by: str = "the model") -> None:
        """Crops training waveforms to the model's segment: the model, not the data config, decides it.

        Called by a classifier when training starts (after :meth:`setup`). Without an explicit
        ``segment_seconds`` the crop becomes ``seconds``; an explicit one shorter than ``seconds`` would pad every
        training segment with silence and is rejected; a longer one is kept (the model crops again).

        Args:
            seconds: the duration of one model segment.
            needed_by: who asks, for the error message (e.g. ``"DenseHighway (256 frames)"``).

        Raises:
            ValueError: the configured ``segment_seconds`` is shorter than ``seconds``.
        """
        if self.segment_seconds is not None and self.segment_seconds + 1e-6 < seconds:
            raise ValueError(
                f"{type(self).__name__}: segment_seconds {self.segment_seconds} is shorter than the segment of "
                f"{needed_by}, {seconds:.3f} s: every training segment would be padded with silence. Remove "
                "segment_seconds from the data config (the model's segment decides the crop) or raise it."
            )
        if self.segment_seconds is None:
            self.segment_seconds = float(seconds)
            log.info("training crop: %.3f s, the segment of %s", seconds, needed_by)
        train = self.datasets.get("train")
        if train is not None and hasattr(train, "segment_samples"):
            train.segment_samples = round(self.segment_seconds * self.sample_rate)

    def use_item_features(self, features: ItemFeatures | None) -> None:
        """Makes every split's items carry ``features`` computed in the loader's workers (a model's request).

        Called by a model whose front-end is not learnt (e.g. an openSMILE + SVM baseline) in its ``setup``. The
        training loader then keeps every utterance (no ``drop_last``): such a model is fitted on all of them.

        Args:
            features: the per-item extractor (:class:`~ser_lightning.data.dataset.ItemFeatures`), or ``None`` (the
                model extracts its features itself, e.g. after an enhancement stage; every item is still kept).
        """
        self.item_features = features
        self.keep_all_training = True
        for dataset in self.datasets.values():
            if hasattr(dataset, "item_features"):
                dataset.item_features = features

    def set_training_sampler(self, class_balanced: bool) -> None:
        """Draws training batches class-balanced (:class:`~ser_lightning.data.sampling.ClassBalancedSampler`) or not.

        Called by a classifier with ``balanced_sampler`` in its ``setup``; validation, test and predict loaders
        are never resampled.
        """
        self.class_balanced = bool(class_balanced)

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
        return corpus_fingerprint(root, self._fingerprint_header(root))

    def _fingerprint_header(self, root: Path) -> list[object]:
        """What the parsed, checked corpus depends on besides its files: class, root, labels, parsing arguments."""
        return [type(self).__module__, type(self).__qualname__, str(root.resolve()), self.label_names,
                [repr(getattr(self, a)) for a in self.manifest_args], repr(self.min_seconds)]  # fmt: skip

    def records(self) -> list[Utterance]:
        """The corpus' checked utterances: parsed, audio decoded and checked once, content-hashed, cached.

        Unusable files (unreadable, empty, non-finite, too short, silent: :meth:`probe_audio`) are skipped (see
        :meth:`skip`); near-silent ones are kept and listed in :attr:`quiet`. The result is cached in
        ``<cache>/manifests/`` (:mod:`ser_lightning.data.cache`) and reused while no file under the corpus root
        changes.
        """
        key = self._fingerprint() if self.cache_manifest else None
        cache = manifest_cache_path(self.corpus_name, key) if key else None
        cached = read_manifest_cache(cache) if cache is not None else None
        if cached is not None:
            self.skipped = cached.skipped
            self.quiet = cached.quiet
            if cached.dropped:
                self.dropped = cached.dropped
            for item in self.skipped:
                log.warning("skipping %s: %s", item["path"], item["reason"])
            for item in self.quiet:
                log.warning("near-silent audio kept: %s (peak %.1f dBFS)", item["path"], item["peak_dbfs"])
            if self.skipped and self.strict:
                first = self.skipped[0]
                raise AudioReadError(f"{first['path']}: {first['reason']} (strict=True)")
            return cached.records
        self.skipped = []
        self.quiet = []
        checked = []
        for record in self.load_records():
            try:
                found = self.probe_audio(record.path)
            except AudioReadError as err:
                self.skip(record.path, str(err).split(": ", 1)[-1], getattr(err, "kind", "unreadable"))
                continue
            if found.quiet:
                log.warning("near-silent audio kept: %s (peak %.1f dBFS)", record.path, found.peak_dbfs)
                self.quiet.append({"path": record.path, "peak_dbfs": found.peak_dbfs})
            checked.append(
                replace(
                    record,
                    duration=record.duration or round(found.duration, 4),
                    checksum=record.checksum or audio_checksum(record.path),
                )
            )
        if cache is not None:
            dropped = dict(getattr(self, "dropped", {}) or {})
            write_manifest_cache(cache, CachedManifest(checked, self.skipped, dropped, list(self.quiet)))
        return checked

    # ----------------------------------------------------------------------------------------- lifecycle
    def setup(self, stage: str | None = None) -> None:
        """Loads the manifest, makes the split, checks it for leakage, and builds the datasets."""
        if self.split is None:
            self.split = self.build_split()
            if self.derived is not None:
                paths = self.derived.paths(self)
                self.split = apply_derived(self.split, paths, self.derived.splits, self.skip)
                log.info("%s: the %s split(s) read derived audio (%s)", self.corpus_name,
                         "/".join(self.derived.splits), self.derived.describe().get("folder"))  # fmt: skip
            stamp = self.describe()
            split_stamp = {
                k: stamp[k]
                for k in ("corpus", "speaker_independent", "shared_sentences", "test_speakers", "val_speakers", "sizes")
            }
            split_stamp["skipped_files"] = len(self.skipped)  # at setup (files failing later: results.json)
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
        for dataset in self.datasets.values():  # one record of read failures, kept across setup() calls
            if hasattr(dataset, "read_failures"):
                dataset.read_failures = self._read_failures
            if self.item_features is not None and hasattr(dataset, "item_features"):
                dataset.item_features = self.item_features

    def read_failures(self) -> list[dict[str, str]]:
        """Utterances skipped when read (files that broke after setup), over every split, counted so far."""
        return list(self._read_failures.values())

    def skipped_stamp(self) -> dict[str, object]:
        """The files left out, for ``describe()``.

        Returns:
            ``skipped`` (``count`` and ``files``: ``path``, ``reason``, ``kind``, and ``stage: read`` for a file
            that failed after setup), ``skipped_by_kind`` (kind -> count) and ``skipped_at_read`` (how many of
            them failed after setup).
        """
        at_read = [f for f in self.read_failures() if f["path"] not in {s["path"] for s in self.skipped}]
        files = [*self.skipped, *at_read]
        by_kind: dict[str, int] = {}
        for item in files:
            by_kind[item.get("kind", "parse")] = by_kind.get(item.get("kind", "parse"), 0) + 1
        return {"skipped": {"count": len(files), "files": files}, "skipped_by_kind": dict(sorted(by_kind.items())),
                "skipped_at_read": len(at_read)}  # fmt: skip

    def seeds(self) -> dict[str, int | None]:
        """Every seed of the run, for ``describe()["seeds"]``.

        Returns:
            ``seed_everything`` (Lightning's ``PL_GLOBAL_SEED``, set by ``seed_everything``, which the CLI calls;
            ``None`` if it was not called) and ``data_seed`` (:attr:`seed`, the split's shuffles).
        """
        global_seed = os.environ.get("PL_GLOBAL_SEED")
        return {"seed_everything": int(global_seed) if global_seed not in (None, "") else None,
                "data_seed": self.seed}  # fmt: skip

    def describe(self) -> dict[str, object]:
        """The run's data stamp: corpus, protocol, fold, class names, split sizes and speakers, augmentation, VAD.

        Also the files skipped (at setup and when read), the near-silent files kept, and every seed of the run.
        """
        if self.split is None:
            raise RuntimeError("describe() needs setup() first")
        return {
            "corpus": self.corpus_name,
            self.label_kind: list(self.label_names),
            **self.split.stamp,
            "class_counts": {name: count_by(part, "label") for name, part in self.split.parts().items()},
            "num_speakers": {name: len(unique(part, "speaker")) for name, part in self.split.parts().items()},
            **self.skipped_stamp(),
            "quiet": {"count": len(self.quiet), "files": list(self.quiet), "below_dbfs": QUIET_DBFS},
            "audio_checks": {"min_seconds": self.min_seconds, "silent_at_or_below_dbfs": SILENCE_DBFS},
            "dropped_labels": dict(getattr(self, "dropped", {}) or {}),
            "augmentation": augmentation_stamp(self.augmentation),
            "derived": None if self.derived is None else self.derived.describe(),
            "vad_mode": self.vad_mode,
            "seeds": self.seeds(),
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
        dataset = self.make_dataset("predict", [Utterance(str(p), first, "unknown", utt_id=p.stem) for p in files])
        # Files are checked when read: each unusable one becomes a row with status "error" in predictions.csv.
        dataset.keep_empty_batches = True
        return dataset

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
            if self.class_balanced:
                labels = [dataset.class_index[r.label] for r in dataset.records]
                sampler = ClassBalancedSampler(dataset, labels, seed=seed, num_replicas=replicas, rank=rank)
            else:
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
        return SkippingDataLoader(
            dataset,
            batch_size=self.batch_size if training else self.eval_batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=training and len(dataset) > self.batch_size and not self.keep_all_training,
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
