"""Noisy/clean pairs for training and evaluating the speech enhancer (Triantafyllopoulos et al. 2019, §2.1).

Clean speech comes from the ``enhance`` voice set of the embedded corpus (talkers that no SER split uses), a
Common Voice release (``clips/*.mp3`` with ``validated.tsv`` or ``train.tsv``), a plain folder of speech, or any
toolkit corpus DataModule. Noise comes from a noise bank (:mod:`ser_lightning.augment`): training and validation
draw from its ``train`` part, the test from its held-out ``eval`` part. The toolkit's one mixer,
:func:`~ser_lightning.augment.mixing.mix_at_snr`, adds it.

* training: each item is a random crop of an utterance mixed with a random noise category at an SNR drawn from
  ``train_snr_db`` (0-25 dB in 5 dB steps, as in the paper), every draw seeded by ``(seed, epoch, index)``
  (:mod:`ser_lightning.data.sampling`), so the mixture is the same whatever the worker that makes it;
* validation: the held-out validation speakers, one fixed mixture per utterance from the training SNRs;
* test: the held-out test speakers x ``test_snr_db`` (-5 to 20 dB), whole utterances, eval-part noise, seeded
  by the item: the same mixtures for every enhancer.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ser_lightning.audio import AUDIO_SUFFIXES
from ser_lightning.augment.mixing import mix_at_snr
from ser_lightning.augment.noise import NoiseBank, ProceduralNoiseBank
from ser_lightning.data.base import SERDataModule
from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.dataset import UtteranceDataset, collate_utterances, failed_item
from ser_lightning.data.manifest import Utterance, read_manifest_csv
from ser_lightning.data.sampling import decode_key, item_seed
from ser_lightning.errors import AudioReadError, CorpusNotFoundError
from ser_lightning.synth import ensure_corpus

log = logging.getLogger(__name__)

SPEECH_LABEL = "speech"
"""The one label of enhancement data (the enhancer has no classes)."""


def parse_common_voice(root: Path, table: str = "validated.tsv") -> list[Utterance]:
    """Parses a Common Voice release: ``<root>/<table>`` (tab-separated, ``client_id`` and ``path``) and ``clips/``.

    Args:
        root: the language folder of the release (holding ``clips/`` and the tables).
        table: ``validated.tsv`` or ``train.tsv`` (any table with ``client_id`` and ``path`` columns).

    Returns:
        One record per listed clip that exists; the speaker is the ``client_id``.
    """
    path = root / table
    if not path.is_file():
        raise CorpusNotFoundError(f"{path} does not exist; expected a Common Voice layout (clips/*.mp3, {table})")
    records = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"client_id", "path"} - set(reader.fieldnames or [])
        if missing:
            raise CorpusNotFoundError(f"{path}: missing column(s) {sorted(missing)}")
        for row in reader:
            clip = root / "clips" / row["path"]
            if not clip.is_file():
                log.warning("skipping %s: listed in %s but not in clips/", clip, table)
                continue
            speaker = row["client_id"][:16] or "unknown"
            records.append(Utterance(str(clip), SPEECH_LABEL, speaker, session=speaker, utt_id=clip.stem,
                                     corpus="common_voice"))  # fmt: skip
    return records


def parse_speech_folder(root: Path) -> list[Utterance]:
    """A plain folder of speech: every audio file under ``root``; speaker = its folder relative to ``root``.

    Args:
        root: the folder.
    """
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise CorpusNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {root}")
    records = []
    for path in files:
        speaker = str(path.parent.relative_to(root)) if path.parent != root else path.stem
        records.append(Utterance(str(path), SPEECH_LABEL, speaker, session=speaker,
                                 utt_id=str(path.relative_to(root).with_suffix("")).replace("/", "_"),
                                 corpus="folder"))  # fmt: skip
    return records


class NoisyCleanDataset(Dataset):
    """Noisy/clean waveform pairs: clean utterances mixed with a noise bank at SNRs, seeded per item.

    Training items (``segment_samples`` set, keys from :class:`~ser_lightning.data.sampling.EpochSampler`) are
    random crops with a random category and SNR drawn from ``(seed, epoch, index)``. Evaluation items
    (``pairs``: every utterance at every SNR) are whole utterances, each mixture drawn from ``(seed, index)``.

    An utterance that cannot be read is a marker item (counted by the loader, see
    :class:`~ser_lightning.data.dataset.UtteranceDataset`).

    Args:
        speech: the clean utterances (labels ignored).
        bank: the noise bank, already restricted to its part.
        categories: the noise categories drawn from.
        snr_db: the SNRs drawn from (training) or crossed with every utterance (evaluation).
        sample_rate: sample rate of the audio.
        segment_samples: training crop length; ``None`` for whole utterances.
        pairs: evaluation: every utterance at every SNR (``len = utterances x SNRs``).
        min_seconds: the shortest usable utterance.
    """

    seed: int = 0

    def __init__(
        self,
        speech: UtteranceDataset,
        bank: NoiseBank,
        categories: Sequence[str],
        snr_db: Sequence[float],
        sample_rate: int,
        segment_samples: int | None = None,
        pairs: bool = False,
    ) -> None:
        self.speech = speech
        self.records = speech.records if not pairs else [r for r in speech.records for _ in snr_db]
        self.bank = bank
        self.categories = list(categories)
        self.snr_db = [float(s) for s in snr_db]
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples
        self.pairs = pairs
        self.keep_empty_batches = False
        self.read_failures = speech.read_failures

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int) -> dict[str, object]:
        epoch, index = decode_key(key, len(self.records))
        utterance = index // len(self.snr_db) if self.pairs else index
        item = self.speech[utterance]
        if item.get("failed"):
            return item
        seed = item_seed(self.seed, epoch if epoch is not None else 0, index, stream=2)
        rng = np.random.default_rng(seed)
        clean = item["waveform"].numpy()
        if self.segment_samples is not None and clean.size > self.segment_samples:
            start = int(rng.integers(0, clean.size - self.segment_samples + 1))
            clean = clean[start : start + self.segment_samples]
        category = self.categories[int(rng.integers(len(self.categories)))]
        snr = self.snr_db[index % len(self.snr_db)] if self.pairs else float(rng.choice(self.snr_db))
        noise = self.bank.sample(category, clean.size, self.sample_rate, rng)
        try:
            noisy = mix_at_snr(clean, noise, snr, rng)
        except ValueError as err:  # a silent crop: its SNR is undefined
            error = AudioReadError(f"{item['path']}: {err}", kind="silent")
            return failed_item(self.speech.records[utterance], index, error)
        return {**item, "waveform": torch.from_numpy(noisy), "clean": torch.from_numpy(clean.copy()),
                "length": clean.size, "snr_db": snr, "noise": category, "index": index}  # fmt: skip


def collate_pairs(items: Sequence[dict[str, object]]) -> dict[str, object]:
    """:func:`~ser_lightning.data.dataset.collate_utterances` plus ``clean`` [B, T], ``snr_db`` [B] and ``noise``."""
    batch = collate_utterances(items)
    items = [item for item in items if not item.get("failed")]
    clean = torch.zeros_like(batch["waveform"])
    for row, item in enumerate(items):
        clean[row, : int(item["length"])] = item["clean"]
    batch["clean"] = clean
    batch["snr_db"] = torch.tensor([float(item["snr_db"]) for item in items])
    batch["noise"] = [item["noise"] for item in items]
    return batch


class EnhancementDataModule(CorpusDataModule):
    """Noisy/clean speech for the enhancer: clean speech from a source, noise from a bank, mixed on the fly.

    The split (``protocol``; the configs use ``holdout``, a seeded hold-out of whole sessions) keeps the
    validation and test speakers out of training. See the module docstring for what each split yields.

    Args:
        speech: the clean speech: ``synthetic`` (the embedded corpus' ``enhance`` voice set, whose talkers no SER
            split uses), ``common_voice`` (``root``: a Common Voice language folder), ``folder`` (``root``: a
            folder of speech) or ``corpus`` (``corpus``: any toolkit DataModule, all its utterances).
        size: size of the synthetic ``enhance`` corpus (``tiny`` for tests).
        common_voice_table: the Common Voice table listing the clips (``validated.tsv`` or ``train.tsv``).
        corpus: the DataModule whose utterances are the clean speech (``speech: corpus``).
        noise: the noise bank (default: the procedural bank); train/val use its ``train`` part, test its ``eval``.
        noise_categories: the categories drawn from (default: every category of the bank's part).
        train_snr_db: SNRs of training and validation mixtures (0-25 dB in 5 dB steps).
        test_snr_db: SNRs of the test (-5 to 20 dB).
        train_segment_seconds: length of the training crops.
        max_test_utterances: test on a seeded subset of this many held-out utterances (each at every test SNR);
            ``None``: all of them (whole-utterance enhancement of the paper's network is costly on a CPU).
        **kwargs: the arguments of :class:`~ser_lightning.data.corpus.CorpusDataModule`.
    """

    corpus_name = "enhancement"
    manifest_args = ("speech", "size", "common_voice_table")

    def __init__(
        self,
        speech: Literal["synthetic", "common_voice", "folder", "corpus"] = "synthetic",
        size: Literal["tiny", "default"] = "default",
        common_voice_table: str = "validated.tsv",
        corpus: SERDataModule | None = None,
        noise: NoiseBank | None = None,
        noise_categories: list[str] | None = None,
        train_snr_db: list[float] | None = None,
        test_snr_db: list[float] | None = None,
        train_segment_seconds: float = 1.0,
        max_test_utterances: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if speech == "corpus" and corpus is None:
            raise ValueError("speech='corpus' needs `corpus`, the DataModule whose utterances are the clean speech")
        if train_segment_seconds <= 0:
            raise ValueError(f"train_segment_seconds must be positive, got {train_segment_seconds}")
        self.speech = speech
        self.size = size
        self.common_voice_table = common_voice_table
        self.corpus = corpus
        bank = noise if noise is not None else ProceduralNoiseBank()
        self.banks = {"train": bank.with_part("train"), "eval": bank.with_part("eval")}
        self.noise_categories = list(noise_categories) if noise_categories else None
        for part, part_bank in self.banks.items():
            unknown = sorted(set(self.noise_categories or []) - set(part_bank.categories))
            if unknown:
                raise ValueError(f"noise categories {unknown} are not in the {part!r} part: {part_bank.categories}")
        self.train_snr_db = list(train_snr_db) if train_snr_db else [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
        self.test_snr_db = list(test_snr_db) if test_snr_db else [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0]
        self.train_segment_seconds = train_segment_seconds
        if max_test_utterances is not None and max_test_utterances < 1:
            raise ValueError(f"max_test_utterances must be positive, got {max_test_utterances}")
        self.max_test_utterances = max_test_utterances

    label_kind = "labels"

    @property
    def label_names(self) -> list[str]:
        """One label, ``speech``: enhancement data has no emotion classes."""
        return [SPEECH_LABEL]

    @property
    def class_names(self) -> list[str]:
        """Not defined (reading it raises AttributeError), so the CLI links no class set into the enhancer."""
        raise AttributeError(f"{type(self).__name__} has no emotion classes (noisy/clean speech pairs)")

    @property
    def num_classes(self) -> int:
        """Not defined, as :attr:`class_names`."""
        raise AttributeError(f"{type(self).__name__} has no emotion classes (noisy/clean speech pairs)")

    def corpus_root(self) -> Path | None:
        """The folder of the clean speech."""
        if self.speech == "synthetic":
            return ensure_corpus(size=self.size, voice_set="enhance", cache_dir=self.root if self.root else None)
        if self.speech == "corpus":
            return self.corpus.corpus_root()
        return super().corpus_root()

    def load_records(self) -> list[Utterance]:
        """The clean utterances of the source, all labelled ``speech``."""
        if self.speech == "synthetic":
            folder = self.corpus_root()
            records = read_manifest_csv(folder / "manifest.csv", corpus="synthetic_enhance")
        elif self.speech == "common_voice":
            records = parse_common_voice(self.require_root("a Common Voice layout"), self.common_voice_table)
        elif self.speech == "folder":
            records = parse_speech_folder(self.require_root("a folder of speech audio"))
        else:
            records = self.corpus.load_records()
        return [replace(r, label=SPEECH_LABEL) for r in records]

    def categories(self, part: str) -> list[str]:
        """The noise categories drawn from in ``part``."""
        return self.noise_categories or list(self.banks[part].categories)

    def make_dataset(self, split: str, records: list[Utterance]) -> Dataset:
        """Training crops, validation mixtures, or the test grid of utterances x SNRs (see the module docstring)."""
        speech = UtteranceDataset(records, self.label_names, self.sample_rate, min_seconds=self.min_seconds,
                                  strict=self.strict)  # fmt: skip
        if split == "train":
            segment = round(self.train_segment_seconds * self.sample_rate)
            return NoisyCleanDataset(speech, self.banks["train"], self.categories("train"), self.train_snr_db,
                                     self.sample_rate, segment_samples=segment)  # fmt: skip
        if split == "val":
            return NoisyCleanDataset(speech, self.banks["train"], self.categories("train"), self.train_snr_db,
                                     self.sample_rate)  # fmt: skip
        if self.max_test_utterances is not None and len(records) > self.max_test_utterances:
            keep = np.random.default_rng(self.seed).choice(len(records), self.max_test_utterances, replace=False)
            records = [records[i] for i in sorted(keep)]
            speech = UtteranceDataset(records, self.label_names, self.sample_rate, min_seconds=self.min_seconds,
                                      strict=self.strict)  # fmt: skip
        return NoisyCleanDataset(speech, self.banks["eval"], self.categories("eval"), self.test_snr_db,
                                 self.sample_rate, pairs=True)  # fmt: skip

    collate_fn = staticmethod(collate_pairs)

    def set_training_crop(self, seconds: float, needed_by: str = "the model") -> None:
        """The enhancer's crops are :attr:`train_segment_seconds`; nothing to do."""

    def describe(self) -> dict[str, object]:
        """The base's stamp, plus the speech source, the noise bank, its categories and the SNRs."""
        return {
            **super().describe(),
            "speech": self.speech,
            "noise_bank": type(self.banks["eval"]).__name__,
            "noise_categories": {part: self.categories(part) for part in self.banks},
            "train_snr_db": self.train_snr_db,
            "test_snr_db": self.test_snr_db,
        }
