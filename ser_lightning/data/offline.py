"""Offline augmentation: write augmented copies of a corpus and a CSV manifest that lists them.

``python -m ser_lightning.data.offline --data configs/data/synthetic.yaml --out runs/augmented --copies 10``

This is how Paul et al. 2025 (EmoAugNet §III) built its training data: every file augmented ten times *before* the
split. It exists here to reproduce that protocol and to show what it does to the figures (docs/leakage.md): a
random split of the augmented pool puts copies of the same recording on both sides of the split, and the test
UA measures recall of recordings, not recognition of emotion. For honest experiments use the DataModule's
``augmentation`` (on the fly, training split only) with a speaker-independent protocol.

The manifest (``<out>/manifest.csv``) is read by :class:`~ser_lightning.data.ManifestDataModule`; it keeps each
copy's speaker, session and sentence and names its source recording in ``source_utt`` and ``copy``
(0 = the original).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import sys
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from jsonargparse import ArgumentParser

import ser_lightning.data  # noqa: F401  (registers the corpus DataModules)
from ser_lightning.audio import WaveformAugmentation, read_audio
from ser_lightning.data.base import SERDataModule
from ser_lightning.data.manifest import Utterance

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
COLUMNS = ["path", "label", "speaker", "session", "sentence", "duration", "utt_id", "source_utt", "copy"]


def copy_seed(seed: int, utt_id: str, copy: int) -> int:
    """The seed of one augmented copy: stable across runs, processes and Python versions."""
    return zlib.crc32(f"{seed}:{utt_id}:{copy}".encode()) + (seed << 32)


def _distinct_copy(
    augmentation: WaveformAugmentation,
    audio: np.ndarray,
    sample_rate: int,
    seed: int,
    record: Utterance,
    copy: int,
    seen: set[bytes],
    attempts: int = 20,
) -> np.ndarray:
    """An augmented copy that differs from the original and the earlier copies (recipes may draw the identity).

    Raises:
        ValueError: ``attempts`` draws in a row gave audio already written for this recording.
    """
    for attempt in range(attempts):
        samples = augmentation.augment(audio, sample_rate, copy_seed(seed, record.utt_id, copy + 1000 * attempt))
        digest = hashlib.sha1(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).digest()
        if digest not in seen:
            seen.add(digest)
            return samples
    raise ValueError(
        f"{record.path}: {attempts} draws of {augmentation!r} gave no new audio for copy {copy}; "
        "use an augmentation that always changes the audio"
    )


def augment_corpus(
    records: list[Utterance],
    out: str | Path,
    augmentation: WaveformAugmentation,
    copies: int = 10,
    sample_rate: int = 16000,
    seed: int = 0,
    keep_original: bool = True,
) -> Path:
    """Writes ``copies`` augmented versions of every record (and the original) and their manifest.

    Args:
        records: the utterances to augment.
        out: output folder (created; files already there with the same names are overwritten).
        augmentation: the augmentation drawn for every copy (redrawn when it returns audio already written for
            the recording, e.g. a recipe that can draw the identity).
        copies: augmented copies per recording.
        sample_rate: sample rate of the written audio.
        seed: seed of the copies (copy ``k`` of utterance ``u`` always gets the same draw).
        keep_original: also list (and write) the unaugmented recording as copy 0.

    Returns:
        The manifest's path.

    Raises:
        ValueError: ``copies`` is negative, nothing would be written, or two records share an ``utt_id``.
    """
    if copies < 0 or (copies == 0 and not keep_original):
        raise ValueError(f"copies must be >= 1 (or 0 with keep_original), got {copies}")
    ids = [r.utt_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("utterance ids are not unique; the copies' file names would collide")
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    first = 0 if keep_original else 1
    for index, record in enumerate(records):
        audio = read_audio(record.path, sample_rate)
        seen = {hashlib.sha1(audio.tobytes()).digest()}
        for copy in range(first, copies + 1):
            samples = audio if copy == 0 else _distinct_copy(augmentation, audio, sample_rate, seed, record, copy, seen)
            name = f"audio/{record.utt_id}_aug{copy:02d}.wav"
            sf.write(out / name, samples, sample_rate, subtype="FLOAT")
            rows.append(
                {
                    "path": name,
                    "label": record.label,
                    "speaker": record.speaker,
                    "session": record.session,
                    "sentence": record.sentence,
                    "duration": f"{len(samples) / sample_rate:.4f}",
                    "utt_id": f"{record.utt_id}_aug{copy:02d}",
                    "source_utt": record.utt_id,
                    "copy": copy,
                }
            )
        if (index + 1) % 100 == 0:
            log.info("augmented %d/%d recordings", index + 1, len(records))
    manifest = out / MANIFEST
    tmp = manifest.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(manifest)
    log.info("wrote %d files (%d recordings x %d) and %s", len(rows), len(records), copies + 1 - first, manifest)
    return manifest


def main(args: list[str] | None = None) -> int:
    """Parses ``--data`` (a data YAML), ``--augmentation``, ``--copies`` and ``--out`` and writes the copies.

    Args:
        args: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 on success.
    """
    parser = ArgumentParser(prog="python -m ser_lightning.data.offline", description=__doc__)
    parser.add_argument("-c", "--config", action="config", help="a YAML with the arguments below")
    parser.add_subclass_arguments(SERDataModule, "data", required=True, help="the corpus (a data YAML)")
    parser.add_subclass_arguments(
        WaveformAugmentation,
        "augmentation",
        default={"class_path": "ser_lightning.augment.Recipe", "init_args": {"name": "emoaugnet"}},
        help="the augmentation (default: Paul et al. 2025's recipe)",
    )
    parser.add_argument("--out", type=str, required=True, help="output folder (audio/ and manifest.csv)")
    parser.add_argument("--copies", type=int, default=10, help="augmented copies per recording (Paul et al. 2025: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the copies")
    parser.add_argument("--keep_original", type=bool, default=True, help="list the original as copy 0")
    cfg = parser.parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    init = parser.instantiate(cfg)
    data: SERDataModule = init.data
    data.prepare_data()
    records = data.records()
    augment_corpus(records, cfg.out, init.augmentation, cfg.copies, data.sample_rate, cfg.seed, cfg.keep_original)
    return 0


if __name__ == "__main__":
    sys.exit(main())
