r"""Offline derivation of a corpus: noise at a fixed SNR, optionally enhanced, cached and deterministic.

For the matched / mismatched / multi-SNR conditions of Triantafyllopoulos et al. (2019, §4): every utterance of
a corpus DataModule is mixed (:func:`~ser_lightning.augment.mixing.mix_at_snr`) with noise of one part of a noise
bank at one SNR, and, for ``output="enhanced"``, passed through a trained enhancer
(:class:`~ser_lightning.models.enhancement.SpeechEnhancer` checkpoint). The result is a folder of WAV files and a
``manifest.csv`` (``path,label,speaker,session,sentence,duration,utt_id`` plus ``source_path``, ``noise``,
``snr_db``) that :class:`~ser_lightning.data.ManifestDataModule` reads with the source corpus' speakers and
sessions, so its protocols split it exactly as the source.

The folder is ``<cache>/derived/<corpus>-<output>-snr<k>-<key>``: the key hashes the corpus (every utterance id
and audio checksum, the sample rate), the noise bank (class, settings, part, categories), the SNR, the seed, the
output and the enhancer checkpoint's SHA-256. A second call with the same inputs reuses the folder; each
utterance's noise draw is seeded by ``(seed, utt_id)``, so the noisy audio of ``noisy`` and ``enhanced``
derivations is the same mixture.

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
import shutil
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch

from ser_lightning.audio import cache_root, read_audio
from ser_lightning.augment.mixing import mix_at_snr
from ser_lightning.augment.noise import NoiseBank, ProceduralNoiseBank
from ser_lightning.augment.parts import NoisePart
from ser_lightning.data.base import SERDataModule
from ser_lightning.models.frontends_enhancement import load_enhancer

log = logging.getLogger(__name__)

DERIVED_VERSION = 1
"""Bumped when the derivation changes what it writes."""
COLUMNS = ["path", "label", "speaker", "session", "sentence", "duration", "utt_id", "source_path", "noise", "snr_db"]


def derivation_key(
    data: SERDataModule,
    bank: NoiseBank,
    categories: list[str],
    snr_db: float,
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
        "snr_db": float(snr_db),
        "seed": int(seed),
        "output": output,
        "enhancer": enhancer_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def derive_corpus(
    data: SERDataModule,
    snr_db: float,
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
        snr_db: the SNR of every mixture.
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
    if output == "enhanced" and not enhancer:
        raise ValueError("output='enhanced' needs `enhancer`, a SpeechEnhancer checkpoint")
    if output == "noisy" and enhancer:
        raise ValueError("an enhancer was given but output='noisy'; set output='enhanced' to use it")
    bank = (noise if noise is not None else ProceduralNoiseBank()).with_part(part)
    categories = list(categories) if categories else list(bank.categories)
    unknown = sorted(set(categories) - set(bank.categories))
    if unknown:
        raise ValueError(f"noise categories {unknown} are not in the {part!r} part: {bank.categories}")
    model, config = load_enhancer(enhancer) if enhancer else (None, {})
    if model is not None and model.sample_rate != data.sample_rate:
        raise ValueError(f"{enhancer}: the enhancer works at {model.sample_rate} Hz, the data at {data.sample_rate}")
    key = derivation_key(data, bank, categories, snr_db, seed, output, config.get("sha256"))
    folder = Path(cache_dir or cache_root()) / "derived" / f"{data.corpus_name}-{output}-snr{snr_db:g}-{key}"
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        log.info("derived corpus %s is cached", folder)
        return manifest
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    rows, rate = [], data.sample_rate
    for record in data.records():
        clean = read_audio(record.path, rate)
        rng = np.random.default_rng([int(seed), zlib.crc32(record.utt_id.encode())])
        category = categories[int(rng.integers(len(categories)))]
        try:
            mixed = mix_at_snr(clean, bank.sample(category, clean.size, rate, rng), snr_db, rng)
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
                     "source_path": record.path, "noise": category, "snr_db": f"{snr_db:g}"})  # fmt: skip
    with (tmp / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    stamp = {"corpus": data.corpus_name, "output": output, "snr_db": snr_db, "part": part, "categories": categories,
             "seed": seed, "enhancer": config or None, "utterances": len(rows), "key": key}  # fmt: skip
    (tmp / "derivation.json").write_text(json.dumps(stamp, indent=2))
    if folder.exists():  # written meanwhile by another process: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(folder)
    log.info("derived %d utterances (%s, %g dB, %s noise) into %s", len(rows), output, snr_db, part, folder)
    return manifest


def main(args: list[str] | None = None) -> None:
    """``python -m ser_lightning.models.derive``: :func:`derive_corpus` from the command line (prints the manifest)."""
    from jsonargparse import CLI

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = CLI(derive_corpus, args=args, as_positional=False)
    print(manifest)


if __name__ == "__main__":
    main()
