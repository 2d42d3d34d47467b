r"""Offline derivation of a corpus: noise at a fixed SNR, optionally enhanced, cached and deterministic.

For the matched / mismatched / multi-SNR conditions of Triantafyllopoulos et al. (2019, §4): every utterance of
a corpus DataModule is mixed (:func:`~ser_lightning.augment.mixing.mix_at_snr`) with noise of one part of a noise
bank at one SNR (or at an SNR drawn uniformly per utterance from a range: the multi-SNR condition), and, for
``output="enhanced"``, passed through a trained enhancer
(:class:`~ser_lightning.models.enhancement.SpeechEnhancer` checkpoint). The result is a folder of WAV files and a
``manifest.csv`` (``path,label,speaker,session,sentence,duration,utt_id`` plus ``source_path``, ``noise``,
``snr_db``) that :class:`~ser_lightning.data.ManifestDataModule` reads with the source corpus' speakers and
sessions, so its protocols split it exactly as the source.

The folder is ``<cache>/derived/<corpus>-<output>-snr<k>-<key>`` (``snr<lo>to<hi>`` for a range): the key hashes the
corpus (every utterance id and audio checksum, the sample rate), the noise bank (class, settings, part, categories),
the SNR, the seed, the output and the enhancer checkpoint's SHA-256. A second call with the same inputs reuses the
folder; each utterance's noise draw is seeded by ``(seed, utt_id)``, so the noisy audio of ``noisy`` and
``enhanced`` derivations is the same mixture. Processes deriving the same folder at once (cells of an experiment)
take turns on a file lock; the second finds the first's folder.

:class:`DerivedCorpus` is the :class:`~ser_lightning.data.derived.DerivedAudio` that a DataModule's ``derived``
argument takes: its training and validation splits then read the derived audio (Triantafyllopoulos et al. 2019:
matched and multi-SNR training on noisy or enhanced audio made once, not re-enhanced per epoch)::

    --data.init_args.derived.class_path ser_lightning.models.derive.DerivedCorpus
    --data.init_args.derived.init_args.snr_db 0 --data.init_args.derived.init_args.output enhanced
    --data.init_args.derived.init_args.enhancer runs/enhancement_cpu/version_0/checkpoints/last.ckpt

Command line (jsonargparse)::

    python -m ser_lightning.models.derive --data.class_path ser_lightning.data.SyntheticDataModule \\
        --data.init_args.size default --snr_db 0 --part eval --output enhanced \\
        --enhancer runs/enhancement_cpu/version_0/checkpoints/last.ckpt
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import torch
from filelock import FileLock

from ser_lightning.audio import cache_root, read_audio
from ser_lightning.augment.mixing import mix_at_snr
from ser_lightning.augment.noise import NoiseBank, ProceduralNoiseBank
from ser_lightning.augment.parts import NoisePart
from ser_lightning.data.base import SERDataModule
from ser_lightning.data.derived import DerivedAudio, check_splits
from ser_lightning.models.frontends_enhancement import load_enhancer

log = logging.getLogger(__name__)

SNR = float | tuple[float, float]
"""One SNR in dB, or a ``(low, high)`` range drawn from uniformly per utterance."""

DERIVED_VERSION = 1
"""Bumped when the derivation changes what it writes."""
COLUMNS = ["path", "label", "speaker", "session", "sentence", "duration", "utt_id", "source_path", "noise", "snr_db"]


def derivation_key(
    data: SERDataModule,
    bank: NoiseBank,
    categories: list[str],
    snr_db: SNR,
    seed: int,
    output: str,
    enhancer_sha256: str | None,
) -> str:
    """The cache key of a derived corpus (see the module docstring)."""
    records = sorted((r.utt_id, r.checksum or r.path) for r in data.records())
    settings = {k: repr(v) for k, v in sorted(vars(bank).items()) if not k.startswith("_")}
    payload = {
        "version": DERIVED_VERSION,
        "corpus": data.corpus_name,
        "sample_rate": data.sample_rate,
        "records": records,
        "bank": [type(bank).__qualname__, settings, bank.effective_part, categories],
        "snr_db": [float(x) for x in snr_db] if isinstance(snr_db, tuple) else float(snr_db),
        "seed": int(seed),
        "output": output,
        "enhancer": enhancer_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def snr_range(snr_db: SNR | list[float]) -> SNR:
    """``snr_db`` checked: a finite number, or a ``(low, high)`` pair with ``low <= high`` (equal ends: one SNR)."""
    if isinstance(snr_db, list | tuple):
        if len(snr_db) != 2:
            raise ValueError(f"snr_db must be one SNR or a [low, high] range, got {list(snr_db)}")
        low, high = (float(x) for x in snr_db)
        if not (np.isfinite(low) and np.isfinite(high)) or low > high:
            raise ValueError(f"snr_db range must be finite with low <= high, got {list(snr_db)}")
        return low if low == high else (low, high)
    value = float(snr_db)
    if not np.isfinite(value):
        raise ValueError(f"snr_db must be finite, got {snr_db!r}")
    return value


def check_output(output: str, enhancer: str | None) -> None:
    """An enhanced derivation needs an enhancer; a noisy one takes none."""
    if output == "enhanced" and not enhancer:
        raise ValueError("output='enhanced' needs `enhancer`, a SpeechEnhancer checkpoint")
    if output == "noisy" and enhancer:
        raise ValueError("an enhancer was given but output='noisy'; set output='enhanced' to use it")


def snr_text(snr_db: SNR) -> str:
    """The SNR part of a derived folder's name: ``snr0``, ``snr-5``, ``snr-5to20``."""
    return f"snr{snr_db[0]:g}to{snr_db[1]:g}" if isinstance(snr_db, tuple) else f"snr{snr_db:g}"


def derive_corpus(
    data: SERDataModule,
    snr_db: SNR | list[float],
    part: NoisePart = "train",
    noise: NoiseBank | None = None,
    categories: list[str] | None = None,
    output: Literal["noisy", "enhanced"] = "noisy",
    enhancer: str | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
) -> Path:
    """Writes (or finds in the cache) the derived corpus and returns its ``manifest.csv``.

    Args:
        data: the source corpus (any toolkit DataModule; all its checked utterances are derived).
        snr_db: the SNR of every mixture, or a ``[low, high]`` range: each utterance's SNR drawn uniformly from it
            (seeded by the utterance, stored per row in the manifest).
        part: the noise bank's part (``train`` for training material, ``eval`` for held-out test noise).
        noise: the noise bank (default: the procedural bank).
        categories: noise categories, one drawn per utterance (default: every category of the part).
        output: ``noisy`` (the mixtures) or ``enhanced`` (the mixtures through ``enhancer``).
        enhancer: a SpeechEnhancer checkpoint (required for ``enhanced``).
        seed: seed of the noise draws.
        cache_dir: the cache root (default: :func:`ser_lightning.audio.cache_root`).

    Returns:
        The path of the derived corpus' ``manifest.csv`` (read it with ``ManifestDataModule``).
    """
    snr_db = snr_range(snr_db)
    check_output(output, enhancer)
    bank = (noise if noise is not None else ProceduralNoiseBank()).with_part(part)
    categories = list(categories) if categories else list(bank.categories)
    unknown = sorted(set(categories) - set(bank.categories))
    if unknown:
        raise ValueError(f"noise categories {unknown} are not in the {part!r} part: {bank.categories}")
    model, config = load_enhancer(enhancer) if enhancer else (None, {})
    if model is not None and model.sample_rate != data.sample_rate:
        raise ValueError(f"{enhancer}: the enhancer works at {model.sample_rate} Hz, the data at {data.sample_rate}")
    key = derivation_key(data, bank, categories, snr_db, seed, output, config.get("sha256"))
    folder = Path(cache_dir or cache_root()) / "derived" / f"{data.corpus_name}-{output}-{snr_text(snr_db)}-{key}"
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        log.info("derived corpus %s is cached", folder)
        return manifest
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if manifest.is_file():  # derived by another process while this one waited
            log.info("derived corpus %s was written by another process", folder)
            return manifest
        _write_derived(data, folder, bank, categories, snr_db, seed, output, model, config, key, part)
    return manifest


def _write_derived(
    data: SERDataModule,
    folder: Path,
    bank: NoiseBank,
    categories: list[str],
    snr_db: SNR,
    seed: int,
    output: str,
    model: Any,
    config: dict[str, Any],
    key: str,
    part: str,
) -> None:
    """Writes the derived corpus into ``folder`` (via a temporary sibling, renamed when complete)."""
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    rows, rate = [], data.sample_rate
    for record in data.records():
        clean = read_audio(record.path, rate)
        rng = np.random.default_rng([int(seed), zlib.crc32(record.utt_id.encode())])
        category = categories[int(rng.integers(len(categories)))]
        snr = float(rng.uniform(*snr_db)) if isinstance(snr_db, tuple) else snr_db
        try:
            mixed = mix_at_snr(clean, bank.sample(category, clean.size, rate, rng), snr, rng)
        except ValueError as err:
            log.warning("skipping %s in the derived corpus: %s", record.path, err)
            continue
        if model is not None:
            with torch.no_grad():
                mixed = model(torch.from_numpy(mixed)[None]).numpy()[0]
        name = f"audio/{record.utt_id}.wav"
        sf.write(tmp / name, mixed, rate, subtype="FLOAT")
        rows.append({"path": name, "label": record.label, "speaker": record.speaker, "session": record.session,
                     "sentence": record.sentence, "duration": f"{mixed.size / rate:.4f}", "utt_id": record.utt_id,
                     "source_path": record.path, "noise": category, "snr_db": f"{snr:.4g}"})  # fmt: skip
    with (tmp / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    stamp = {"corpus": data.corpus_name, "output": output,
             "snr_db": list(snr_db) if isinstance(snr_db, tuple) else snr_db, "part": part, "categories": categories,
             "seed": seed, "enhancer": config or None, "utterances": len(rows), "key": key}  # fmt: skip
    (tmp / "derivation.json").write_text(json.dumps(stamp, indent=2))
    if folder.exists():  # written meanwhile by another process: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(folder)
    log.info("derived %d utterances (%s, %s, %s noise) into %s", len(rows), output, snr_text(snr_db), part, folder)


class DerivedCorpus(DerivedAudio):
    """A DataModule's training (and validation) audio from :func:`derive_corpus`: noisy at an SNR, or enhanced.

    Give it as a DataModule's ``derived`` argument: the split is made on the source corpus, then the named splits
    read the derived files (made once into the cache, then reused by every fold, seed and variant). The
    conditions of Triantafyllopoulos et al. 2019 (§4): ``output: noisy`` with a fixed ``snr_db`` is matched noisy
    training, ``output: enhanced`` (with the enhancer) matched enhanced training, and a ``[low, high]`` range the
    multi-SNR (unknown SNR) training. Noise comes from the bank's ``train`` part by default, disjoint from the
    ``eval`` part that ``NoiseRobustness`` tests on.

    Args:
        snr_db: the SNR in dB, or a ``[low, high]`` range drawn from uniformly per utterance.
        part: the noise bank's part (``train``: training material).
        noise: the noise bank (default: the procedural bank).
        categories: the noise categories, one drawn per utterance (default: every category of the part).
        output: ``noisy`` (the mixtures) or ``enhanced`` (the mixtures through ``enhancer``).
        enhancer: a SpeechEnhancer checkpoint (for ``output: enhanced``).
        seed: seed of the noise draws.
        cache_dir: the cache root (default: :func:`ser_lightning.audio.cache_root`).
        splits: the splits that read derived audio (default ``train`` and ``val``; the test split stays clean for
            the test-time noise callbacks).
    """

    def __init__(
        self,
        snr_db: float | tuple[float, float],
        part: NoisePart = "train",
        noise: NoiseBank | None = None,
        categories: list[str] | None = None,
        output: Literal["noisy", "enhanced"] = "noisy",
        enhancer: str | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        splits: tuple[Literal["train", "val", "test"], ...] = ("train", "val"),
    ) -> None:
        self.snr_db = snr_range(snr_db)
        check_output(output, enhancer)
        if enhancer and not Path(enhancer).expanduser().is_file():
            raise FileNotFoundError(
                f"enhancer checkpoint {enhancer} does not exist (train one: python -m ser_lightning fit --config "
                "configs/enhancement_cpu.yaml)"
            )
        self.part, self.output, self.enhancer, self.seed, self.cache_dir = part, output, enhancer, int(seed), cache_dir
        self.noise_bank = (noise if noise is not None else ProceduralNoiseBank()).with_part(part)
        self.noise_part = self.noise_bank.effective_part
        self.noise_categories = list(categories) if categories else list(self.noise_bank.categories)
        self.splits = check_splits(splits)
        self.folder: Path | None = None

    def paths(self, data: SERDataModule) -> dict[str, str]:
        """Derives (or finds) the corpus of ``data`` and maps each utterance id to its derived file."""
        manifest = derive_corpus(data, self.snr_db, self.part, self.noise_bank, self.noise_categories, self.output,
                                 self.enhancer, self.seed, self.cache_dir)  # fmt: skip
        self.folder = manifest.parent
        with manifest.open(newline="", encoding="utf-8") as handle:
            return {row["utt_id"]: str(self.folder / row["path"]) for row in csv.DictReader(handle)}

    def describe(self) -> dict[str, Any]:
        """The settings (and, once derived, the cache folder)."""
        snr = list(self.snr_db) if isinstance(self.snr_db, tuple) else self.snr_db
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "snr_db": snr, "part": self.noise_part,
                "categories": self.noise_categories, "bank": type(self.noise_bank).__qualname__,
                "output": self.output, "enhancer": self.enhancer, "seed": self.seed, "splits": list(self.splits),
                "folder": None if self.folder is None else str(self.folder)}  # fmt: skip

    def __repr__(self) -> str:
        return f"DerivedCorpus({self.describe()})"


def main(args: list[str] | None = None) -> None:
    """``python -m ser_lightning.models.derive``: :func:`derive_corpus` from the command line (prints the manifest)."""
    from jsonargparse import CLI

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = CLI(derive_corpus, args=args, as_positional=False)
    print(manifest)


if __name__ == "__main__":
    main()
