"""Corpus benchmark: manifest build time for a 10,000-file tree (cold and cached) and loading throughput.

Run by hand:

    python benchmarks/bench_corpora.py [--files 10000] [--cache DIR]

The tree is written in CREMA-D's native layout (``AudioWAV/AAAA_SSS_EEE_LL.wav``, very short clips) into a
temporary folder; the manifest cache goes to a temporary folder too. Loading throughput is measured on the
default synthetic corpus (whole utterances, as validation/test read them, and 2.575 s training crops).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from torch.utils.data import DataLoader

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")


def write_tree(root: Path, n: int) -> None:
    audio = root / "AudioWAV"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(0)
    i = 0
    for actor in range(1001, 1092):
        for sentence in SENTENCES:
            for emotion in EMOTIONS:
                for level in LEVELS:
                    if i == n:
                        return
                    clip = (rng.standard_normal(400) * 1000).astype(np.int16)
                    sf.write(audio / f"{actor}_{sentence}_{emotion}_{level}.wav", clip, 8000, subtype="PCM_16")
                    i += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--cache", default=None, help="folder holding the default synthetic corpus")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SER_LIGHTNING_CACHE"] = str(Path(tmp) / "cache")
        from ser_lightning.data.crema_d import CREMADDataModule

        root = Path(tmp) / "CREMA-D"
        write_tree(root, args.files)
        start = time.perf_counter()
        n = len(CREMADDataModule(root=str(root)).records())
        cold = time.perf_counter() - start
        start = time.perf_counter()
        CREMADDataModule(root=str(root)).records()
        warm = time.perf_counter() - start
        rows.append((f"manifest build, {n} files, first run (parse+probe+hash)", f"{cold:.2f} s"))
        rows.append((f"manifest build, {n} files, cached (stat walk)", f"{warm:.2f} s"))

    from ser_lightning.data import SyntheticDataModule

    data = SyntheticDataModule(root=args.cache, size="default", segment_seconds=2.575, batch_size=32)
    data.prepare_data()
    data.setup("fit")
    for name, dataset in (("whole utterances", data.datasets["val"].__class__(data.split.train, data.class_names,
                                                                               16000)),
                          ("training crops 2.575 s", data.datasets["train"])):  # fmt: skip
        for workers in (0, 2):
            loader = DataLoader(dataset, batch_size=32, num_workers=workers, collate_fn=data.collate_fn)
            start = time.perf_counter()
            count = sum(len(batch["utt_id"]) for batch in loader)
            rate = count / (time.perf_counter() - start)
            rows.append((f"loading {name}, {workers} workers", f"{rate:.0f} utterances/s"))

    width = max(len(k) for k, _ in rows)
    print(f"\n{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 24}")
    for key, value in rows:
        print(f"{key.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
