"""RECOLA (AVEC 2016 release): continuous arousal and valence every 40 ms, for regression."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ser_lightning.audio import WaveformTransform, read_audio
from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.dataset import augment_item
from ser_lightning.data.manifest import ParseReport, Utterance
from ser_lightning.data.sampling import decode_key, item_generator
from ser_lightning.data.splits import Split
from ser_lightning.errors import CorpusNotFoundError, ManifestError, ProtocolError

log = logging.getLogger(__name__)

Target = Literal["arousal", "valence"]
TARGETS: tuple[str, ...] = ("arousal", "valence")
CONTINUOUS_LABEL = "continuous"
"""The ``label`` of every RECOLA record: the targets are continuous, there are no classes."""
LAYOUT = (
    "the AVEC 2016 RECOLA release: recordings_audio/<set>_<n>.wav and "
    "ratings_gold_standard/{arousal,valence}/<set>_<n>.arff (sets train, dev)"
)
_RECORDING = re.compile(r"^(train|dev|test)_(\d+)$", re.IGNORECASE)
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def read_arff_ratings(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads an AVEC gold-standard ARFF file (``@attribute frameTime numeric``, ``@attribute GoldStandard numeric``).

    Other attributes (``Instance_name``) are read and ignored; values may be quoted; ``%`` lines are comments.

    Args:
        path: the ARFF file.

    Returns:
        ``(frame times in seconds, ratings)``, float64 arrays of equal length, times strictly increasing.

    Raises:
        ManifestError: the header lacks the columns, or a row is malformed (names the file and line).
    """
    path = Path(path)
    attributes: list[str] = []
    columns: tuple[int, int] | None = None
    times: list[float] = []
    values: list[float] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("%"):
                continue
            if columns is None:
                low = line.lower()
                if low.startswith("@relation"):
                    continue
                if low.startswith("@attribute"):
                    parts = line.split(None, 2)
                    if len(parts) < 3:
                        raise ManifestError(f"{path}:{line_no}: malformed @attribute line {line!r}")
                    attributes.append(parts[1].strip("'\""))
                    continue
                if low.startswith("@data"):
                    lowered = [a.lower() for a in attributes]
                    missing = [a for a in ("frameTime", "GoldStandard") if a.lower() not in lowered]
                    if missing:
                        raise ManifestError(
                            f"{path}:{line_no}: the header declares no {' or '.join(missing)} attribute "
                            f"(found {attributes}); expected @attribute frameTime numeric and "
                            "@attribute GoldStandard numeric"
                        )
                    columns = (lowered.index("frametime"), lowered.index("goldstandard"))
                    continue
                raise ManifestError(f"{path}:{line_no}: unexpected line before @data: {line!r}")
            fields = [f.strip().strip("'\"") for f in line.split(",")]
            if len(fields) != len(attributes):
                raise ManifestError(
                    f"{path}:{line_no}: expected {len(attributes)} comma-separated values ({', '.join(attributes)}), "
                    f"found {len(fields)}: {line!r}"
                )
            try:
                time, value = float(fields[columns[0]]), float(fields[columns[1]])
            except ValueError as err:
                raise ManifestError(f"{path}:{line_no}: frameTime or GoldStandard is not a number: {line!r}") from err
            if not (math.isfinite(time) and math.isfinite(value)):
                raise ManifestError(f"{path}:{line_no}: frameTime or GoldStandard is not finite: {line!r}")
            if times and time <= times[-1]:
                raise ManifestError(f"{path}:{line_no}: frameTime {time} does not increase (previous {times[-1]})")
            times.append(time)
            values.append(value)
    if columns is None:
        raise ManifestError(f"{path}: no @data section; expected an ARFF file with frameTime and GoldStandard")
    if not times:
        raise ManifestError(f"{path}: no rating rows after @data")
    return np.asarray(times), np.asarray(values)


def ratings_on_grid(times: np.ndarray, values: np.ndarray, rate_hz: float) -> np.ndarray:
    """Ratings at frame times ``i / rate_hz`` (``i = 0 ... last time * rate``), linearly interpolated.

    Frame ``i`` stands for audio ``[i / rate_hz, (i + 1) / rate_hz)``. Ratings already on the grid (AVEC's
    frameTime 0.00, 0.04, … at 25 Hz) are returned as they are; before the first rating the first value holds.
    """
    count = math.floor(float(times[-1]) * rate_hz + 0.5) + 1
    grid = np.arange(count, dtype=np.float64) / rate_hz
    return np.interp(grid, times, values).astype(np.float32)


def load_targets(record: Utterance, names: Sequence[str], rate_hz: float) -> np.ndarray:
    """The targets of a record as a float32 array ``[frames, len(names)]`` (empty when it has no rating files).

    The rating files are named in ``record.extra[f"{name}_file"]``; targets of unequal length are cut to the
    shortest.
    """
    columns = []
    for name in names:
        file = record.extra.get(f"{name}_file")
        if not file:
            return np.zeros((0, len(names)), dtype=np.float32)
        columns.append(ratings_on_grid(*read_arff_ratings(file), rate_hz))
    frames = min(len(c) for c in columns)
    if any(len(c) != frames for c in columns):
        log.info("%s: rating files differ in length %s; cut to %d frames", record.utt_id,
                 [len(c) for c in columns], frames)  # fmt: skip
    return np.stack([c[:frames] for c in columns], axis=1)


def resolve_targets(targets: Sequence[str] | None, target_rate_hz: float, corpus: str = "") -> list[str]:
    """Checks a continuous DataModule's ``targets`` and ``target_rate_hz`` and returns the targets in order.

    Args:
        targets: the selected targets (``None`` or empty: all of :data:`TARGETS`).
        target_rate_hz: the frame rate of the targets.
        corpus: the corpus named in the error messages (e.g. ``RECOLA``).

    Raises:
        ValueError: an unknown or repeated target, or a rate that is not positive.
    """
    selected = list(targets) if targets else list(TARGETS)
    unknown = [t for t in selected if t not in TARGETS]
    if unknown:
        named = f"{corpus} " if corpus else ""
        raise ValueError(f"unknown {named}target(s) {unknown}; expected some of {list(TARGETS)}")
    if len(set(selected)) != len(selected):
        raise ValueError(f"targets has duplicates: {selected}")
    if not target_rate_hz > 0:
        raise ValueError(f"target_rate_hz must be positive, got {target_rate_hz}")
    return selected


def check_frame_aligned(corpus: str, augmentation: WaveformTransform | None, vad_mode: int | None) -> None:
    """Rejects what would misalign frame-level continuous targets: VAD trimming and length-changing augmentation.

    Args:
        corpus: the DataModule's name, for the message.
        augmentation: the training augmentation (checked through its ``preserves_length``, when it has one).
        vad_mode: must be ``None``.

    Raises:
        ValueError: ``vad_mode`` is set, or the augmentation may change the length.
    """
    if vad_mode is not None:
        raise ValueError(
            f"{corpus}: vad_mode={vad_mode} is not supported: trimming non-speech would misalign the frame-level "
            f"continuous targets; leave vad_mode unset (None)"
        )
    if augmentation is not None and not getattr(augmentation, "preserves_length", True):
        raise ValueError(
            f"{corpus}: augmentation {augmentation!r} may change the audio's length (speed perturbation, time "
            f"stretch), which would misalign the frame-level targets; use a length-preserving one (noise, "
            f"reverberation, pitch shift)"
        )


class ContinuousDataset(Dataset):
    """Recordings as waveforms with frame-level continuous targets, optionally cropped for training.

    Items are those of :class:`~ser_lightning.data.dataset.UtteranceDataset` without ``label`` (``waveform``,
    ``length``, ``speaker``, ``utt_id``, ``path``, ``index``) plus ``targets`` (float32 ``[frames, targets]``;
    frame ``i`` covers audio ``[i / target_rate_hz, (i + 1) / target_rate_hz)``) and ``target_length``. Whole
    recordings keep the frames that overlap their audio. Training crops start on a frame boundary and span
    ``segment_seconds`` rounded to whole frames; their targets are the frames of the crop.

    Args:
        records: the recordings of one split (rating files named in ``extra[f"{target}_file"]``).
        target_names: the targets, in column order.
        sample_rate: sample rate of the returned waveforms.
        target_rate_hz: frame rate of the targets.
        segment_seconds: if given, recordings longer than this are randomly cropped to it (training only).
        augment: a length-preserving waveform augmentation of the crop (training only).

    Attributes:
        seed: base seed of the per-item randomness of epoch keys (as in
            :class:`~ser_lightning.data.dataset.UtteranceDataset`).
    """

    seed: int = 0

    def __init__(
        self,
        records: Sequence[Utterance],
        target_names: Sequence[str],
        sample_rate: int,
        target_rate_hz: float = 25.0,
        segment_seconds: float | None = None,
        augment: WaveformTransform | None = None,
    ) -> None:
        self.records = list(records)
        self.target_names = list(target_names)
        self.sample_rate = sample_rate
        self.target_rate_hz = target_rate_hz
        self.segment_frames = max(1, round(segment_seconds * target_rate_hz)) if segment_seconds else None
        self.augment = augment
        self.targets = [load_targets(r, self.target_names, target_rate_hz) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, object]:
        epoch, index = decode_key(index, len(self.records))
        record = self.records[index]
        targets = self.targets[index]
        rate = self.target_rate_hz
        audio_frames = math.floor(record.duration * rate + 1e-6) if record.duration > 0 else None
        available = min(len(targets), audio_frames) if audio_frames is not None else 0
        if self.segment_frames is not None and available > self.segment_frames:
            crop_rng = None if epoch is None else item_generator(self.seed, epoch, index, stream=1)
            first = int(torch.randint(0, available - self.segment_frames + 1, (), generator=crop_rng).item())
            audio = read_audio(record.path, self.sample_rate, first / rate, self.segment_frames / rate)
            targets = targets[first : first + self.segment_frames]
        else:
            audio = read_audio(record.path, self.sample_rate)
            targets = targets[: math.ceil(len(audio) * rate / self.sample_rate - 1e-6)]
        if self.augment is not None:
            length = len(audio)
            audio = np.asarray(augment_item(self.augment, audio, self.sample_rate, self.seed, epoch, index),
                               dtype=np.float32)  # fmt: skip
            if len(audio) != length:
                raise ValueError(
                    f"augmentation {self.augment!r} changed the length of {record.path} ({length} -> {len(audio)} "
                    f"samples); frame-aligned targets need a length-preserving augmentation"
                )
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        return {
            "waveform": waveform,
            "length": waveform.numel(),
            "targets": torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)),
            "target_length": len(targets),
            "speaker": record.speaker,
            "utt_id": record.utt_id,
            "path": record.path,
            "index": index,
        }


def collate_continuous(items: Sequence[dict[str, object]]) -> dict[str, object]:
    """Pads waveforms and targets with zeros to the longest in the batch and keeps both lengths.

    Args:
        items: :class:`ContinuousDataset` items.

    Returns:
        A batch: ``waveform`` [B, T] float32, ``length`` [B] int64, ``targets`` [B, F, targets] float32,
        ``target_length`` [B] int64, ``label`` [B] int64 zeros (for code that expects class labels),
        ``index`` [B] int64, and lists ``speaker``, ``utt_id``, ``path``.
    """
    lengths = torch.tensor([int(item["length"]) for item in items], dtype=torch.long)
    target_lengths = torch.tensor([int(item["target_length"]) for item in items], dtype=torch.long)
    columns = items[0]["targets"].shape[1]  # type: ignore[union-attr]
    waveform = torch.zeros(len(items), int(lengths.max()))
    targets = torch.zeros(len(items), int(target_lengths.max()), columns)
    for row, item in enumerate(items):
        waveform[row, : int(item["length"])] = item["waveform"]
        targets[row, : int(item["target_length"])] = item["targets"]
    return {
        "waveform": waveform,
        "length": lengths,
        "targets": targets,
        "target_length": target_lengths,
        "label": torch.zeros(len(items), dtype=torch.long),
        "index": torch.tensor([int(item["index"]) for item in items], dtype=torch.long),
        "speaker": [item["speaker"] for item in items],
        "utt_id": [item["utt_id"] for item in items],
        "path": [item["path"] for item in items],
    }


def parse_recola(
    root: Path,
    *,
    targets: Sequence[Target] = TARGETS,
    corpus: str = "recola",
    report: ParseReport | None = None,
) -> list[Utterance]:
    """Pairs every train/dev recording with its gold-standard ratings (parsed here, so errors surface early).

    The rules are :class:`RECOLADataModule`'s.

    Args:
        root: the AVEC 2016 RECOLA folder (``recordings_audio``, ``ratings_gold_standard``).
        targets: the rated dimensions a recording needs.
        corpus: the corpus name stored in every record.
        report: collects the skipped files (default: a fresh :class:`~ser_lightning.data.manifest.ParseReport`).

    Returns:
        One record per rated recording (label ``continuous``; the ratings files in ``extra``), by name.

    Raises:
        CorpusNotFoundError: ``root`` lacks ``recordings_audio`` or a ratings folder, or no recording is rated.
        ManifestError: a ratings file is malformed (names the file and line).
    """
    report = report if report is not None else ParseReport()
    audio_dir, ratings_dir = root / "recordings_audio", root / "ratings_gold_standard"
    folders = [audio_dir, *(ratings_dir / t for t in targets)]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise CorpusNotFoundError(f"{root} is not an AVEC 2016 RECOLA folder: missing {missing}; expected {LAYOUT}")
    recordings: dict[str, Path] = {}
    for path in sorted(audio_dir.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in _AUDIO_SUFFIXES:
            report.skip(path, f"not an audio file ({', '.join(_AUDIO_SUFFIXES)})")
        elif not _RECORDING.match(path.stem):
            report.skip(path, "not an AVEC recording name (<train|dev|test>_<n>)")
        else:
            recordings[path.stem] = path
    ratings: dict[str, dict[str, Path]] = {t: {} for t in targets}
    for target in targets:
        for path in sorted((ratings_dir / target).glob("*.arff")):
            ratings[target][path.stem] = path
    unlabelled = []
    records = []
    for stem in sorted(set(recordings) | {s for files in ratings.values() for s in files}):
        files = {t: ratings[t][stem] for t in targets if stem in ratings[t]}
        if stem not in recordings:
            for file in files.values():
                report.skip(file, f"no recording {audio_dir / stem}.wav for these ratings")
            continue
        avec_set = stem.split("_")[0].lower()
        if len(files) < len(targets):
            if not files and avec_set == "test":
                unlabelled.append(stem)  # the test partition's ratings are not public
                continue
            absent = [t for t in targets if t not in files]
            report.skip(recordings[stem], f"no gold-standard {' or '.join(absent)} ratings "
                      f"({', '.join(str(ratings_dir / t / stem) + '.arff' for t in absent)})")  # fmt: skip
            continue
        for file in files.values():
            read_arff_ratings(file)  # malformed ratings fail here, naming the file and line
        records.append(
            Utterance(
                path=str(recordings[stem].resolve()),
                label=CONTINUOUS_LABEL,
                speaker=stem,
                session="",
                sentence="",
                corpus=corpus,
                utt_id=stem,
                extra={
                    "avec_set": avec_set,
                    "partition": avec_set,
                    **{f"{t}_file": str(f.resolve()) for t, f in files.items()},
                },
            )
        )
    if unlabelled:
        log.info("RECOLA: %d test-partition recording(s) without public ratings left out: %s",
                 len(unlabelled), unlabelled)  # fmt: skip
    if not records:
        raise CorpusNotFoundError(f"no recording in {audio_dir} has gold-standard ratings; expected {LAYOUT}")
    return records


class ContinuousTargets:
    """What a regression DataModule links into the model: ``num_targets`` and ``target_names``, not classes.

    ``num_classes`` and ``class_names`` do not exist on such a module (reading them raises AttributeError), so
    the CLI's class links are skipped and only the target links apply. Needs a ``targets`` attribute.
    """

    targets: list[str]
    label_kind = "target_names"

    @property
    def target_names(self) -> list[str]:
        """The target names, in column order (linked into the model as its outputs)."""
        return list(self.targets)

    @property
    def num_targets(self) -> int:
        """Number of continuous targets."""
        return len(self.targets)

    @property
    def label_names(self) -> list[str]:
        """The records' ``label`` is the targets' name list (the base's cache key and describe use it)."""
        return self.target_names

    @property
    def class_names(self) -> list[str]:
        """Not defined: a regression corpus has continuous targets (:attr:`target_names`)."""
        raise AttributeError(f"{type(self).__name__} has continuous targets, not classes: see target_names")

    @property
    def num_classes(self) -> int:
        """Not defined: a regression corpus has continuous targets (:attr:`num_targets`)."""
        raise AttributeError(f"{type(self).__name__} has continuous targets, not classes: see num_targets")


class RECOLADataModule(ContinuousTargets, CorpusDataModule):
    """RECOLA as released for AVEC 2016: spontaneous French dyadic interactions rated for arousal and valence.

    ``root`` is the AVEC 2016 folder: ``recordings_audio/<set>_<n>.wav`` (sets ``train`` and ``dev``; the
    ``test`` recordings have no public ratings and are left out) and gold-standard ratings
    ``ratings_gold_standard/{arousal,valence}/<set>_<n>.arff`` (ARFF: ``Instance_name``, ``frameTime``,
    ``GoldStandard``, one row every 40 ms). Each recording (the first five minutes of one participant) is one
    utterance: speaker = the recording (one participant each), no session, ``label`` ``continuous``, and the
    AVEC set in ``extra["avec_set"]``.

    This corpus is for regression: items carry ``targets`` ``[frames, len(targets)]`` at ``target_rate_hz``
    (see :class:`ContinuousDataset`) and :attr:`target_names` names the targets (``["arousal", "valence"]``), so
    the model's outputs are linked to them; the metric is the concordance correlation coefficient. Training
    crops (``segment_seconds``, e.g. 8 s) start on a 40 ms frame boundary with their targets cropped alike.

    Protocols are over participants: ``official`` is AVEC 2016's own partition (Valstar et al. 2016), as
    Triantafyllopoulos et al. (2019) and Trigeorgis et al. (2016) used it: train on the ``train_<n>``
    recordings, validate (select the model, fit post-processing) on the development ``dev_<n>`` recordings, test
    on ``test_<n>`` (which needs the test partition's ratings; the public release lacks them, and the error
    says so). ``holdout`` (seeded train/validation/test participants), ``kfold`` and ``loso`` ignore the
    partition. Each record keeps its AVEC set in ``extra["avec_set"]`` (and ``extra["partition"]``).
    A ratings file without its recording, or a train/dev recording without its ratings, is skipped (warned,
    counted in ``describe()["skipped"]``); a malformed ARFF row is an error naming the file and line.


    Of the inherited arguments: ``root`` holds ``recordings_audio`` and ``ratings_gold_standard``; ``protocol``
    is ``official`` (AVEC 2016's partition), ``holdout`` or ``kfold`` over participants, or ``loso`` (no
    sessions, so no ``lsso``); ``segment_seconds``
    is rounded to whole target frames; ``augmentation`` must preserve the length; ``vad_mode`` must stay ``None``
    (trimming would misalign the frame-level targets; rejected); ``strict`` also fails on unpaired ratings or
    recordings.

    Args:
        targets: the continuous targets, in column order (default: arousal, valence).
        target_rate_hz: frame rate of the targets (AVEC's gold standard is 25 Hz; other rates interpolate it).
    """

    corpus_name = "recola"
    manifest_args = ("targets",)

    def __init__(
        self,
        targets: list[Target] | None = None,
        target_rate_hz: float = 25.0,
        **kwargs: Any,
    ) -> None:
        selected = resolve_targets(targets, target_rate_hz, corpus="RECOLA")
        super().__init__(**kwargs)
        check_frame_aligned(type(self).__name__, self.augmentation, self.vad_mode)
        self.targets = selected
        self.target_rate_hz = float(target_rate_hz)
        self.dropped: dict[str, int] = {}

    def load_records(self) -> list[Utterance]:
        """Pairs every train/dev recording with its gold-standard ratings (:func:`parse_recola`)."""
        self.dropped = {}
        root = self.require_root(LAYOUT)
        return parse_recola(root, targets=self.targets, corpus=self.corpus_name, report=self.parse_report())

    def make_dataset(self, split: str, records: list[Utterance]) -> Dataset:
        """A :class:`ContinuousDataset`: training crops of ``segment_seconds``, whole recordings otherwise."""
        if split == "train":
            return ContinuousDataset(records, self.targets, self.sample_rate, self.target_rate_hz,
                                     self.segment_seconds, augment=self.configure_train_transform())  # fmt: skip
        return ContinuousDataset(records, self.targets, self.sample_rate, self.target_rate_hz)

    def build_split(self) -> Split:
        """The protocol's split; ``official`` is AVEC 2016's train / development / test partition."""
        try:
            return super().build_split()
        except ProtocolError as err:
            if self.protocol != "official":
                raise
            raise ProtocolError(
                f"{err}. RECOLA's official (AVEC 2016) test part needs the test recordings' gold-standard ratings "
                f"(ratings_gold_standard/<target>/test_<n>.arff under {self.root}), which the public release does "
                "not include; without them use protocol holdout or kfold over participants"
            ) from err

    collate_fn = staticmethod(collate_continuous)
