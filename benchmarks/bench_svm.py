"""openSMILE + SVM benchmark: feature extraction speed per core, and a whole SVM run uncached vs cached.

Run by hand:

    python benchmarks/bench_svm.py [--cache DIR] [--utterances 200] [--feature-sets eGeMAPSv02 ComParE_2016]
                                   [--no-runs]

1. Extraction: the first N utterances of the default synthetic corpus (16 kHz) are read into memory, then each
   feature set's functionals are extracted in this process with one torch thread (one DataLoader worker's share:
   one core) without the cache; then the same utterances through the cache (``OpenSmileExtractor``: content hash
   + ``np.load``). Figures: utterances per second and seconds of audio per second (x real time per core).
2. Runs: ``python -m ser_lightning fit --config configs/<set>_svm.yaml`` (LOSO fold 0, 2 loader workers, then the
   test split) twice with a fresh feature cache: the first run extracts every utterance, the second finds them
   all cached. Figures: wall time of each whole run (process start to exit) and the feature-cache counts of its
   ``results.json``.

The figures depend on the machine's load: the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def extraction(feature_set: str, audio: list, rate: int, cache_dir: str) -> tuple[float, float]:
    """Seconds to extract every utterance without the cache, and to fetch them all from a filled cache."""
    from ser_lightning.models.smile import OpenSmileExtractor

    plain = OpenSmileExtractor(feature_set, cache=False)
    plain.extract(audio[0], rate)  # warm-up: the Smile object and its config
    start = time.perf_counter()
    for samples in audio:
        plain.extract(samples, rate)
    uncached = time.perf_counter() - start
    cached = OpenSmileExtractor(feature_set, cache=True, cache_dir=cache_dir)
    for samples in audio:
        cached(samples, rate)  # fills the cache
    start = time.perf_counter()
    hits = sum(cached(samples, rate)[1] for samples in audio)
    if hits != len(audio):
        raise RuntimeError(f"{feature_set}: {len(audio) - hits} cache misses on a filled cache")
    return uncached, time.perf_counter() - start


def whole_run(feature_set: str, cache_dir: str, runs: str, corpus_cache: str | None) -> tuple[float, dict]:
    """Wall time of one ``fit`` (+ test) of ``configs/<set>_svm.yaml`` and its ``results.json``."""
    config = REPO / "configs" / ("egemaps_svm.yaml" if feature_set == "eGeMAPSv02" else "compare_svm.yaml")
    env = dict(os.environ)
    if corpus_cache:
        env["SER_LIGHTNING_CACHE"] = corpus_cache
    command = [sys.executable, "-m", "ser_lightning", "fit", "--config", str(config),
               "--model.init_args.feature_cache_dir", cache_dir, "--trainer.logger.init_args.save_dir", runs,
               "--trainer.enable_progress_bar", "false"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True, cwd=runs)
    seconds = time.perf_counter() - start
    newest = max(Path(runs).rglob("results.json"), key=lambda p: p.stat().st_mtime)
    return seconds, json.loads(newest.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=None, help="folder holding the default synthetic corpus")
    parser.add_argument("--utterances", type=int, default=200, help="utterances timed per feature set")
    parser.add_argument("--feature-sets", nargs="+", default=["eGeMAPSv02", "ComParE_2016"])
    parser.add_argument("--no-runs", action="store_true", help="time the extraction only, not the two CLI runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(1)

    from ser_lightning.audio import read_audio
    from ser_lightning.models.smile import opensmile_version
    from ser_lightning.synth import ensure_corpus, read_manifest

    load_before = os.getloadavg()[0]
    rate = 16000
    corpus = ensure_corpus(size="default", seed=0, cache_dir=args.cache)
    rows = read_manifest(corpus)[: args.utterances]
    audio = [read_audio(str(corpus / row["path"]), rate) for row in rows]
    seconds = sum(len(a) for a in audio) / rate
    print(f"\nopensmile {opensmile_version()}; {len(audio)} utterances, {seconds:.0f} s of audio "
          f"(mean {seconds / len(audio):.2f} s), 16 kHz; one process, one torch thread; "
          f"load average {load_before:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'feature set':<14} {'utt/s':>8} {'x real time/core':>17} {'cached utt/s':>13} {'cache speed-up':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for feature_set in args.feature_sets:
            uncached, cached = extraction(feature_set, audio, rate, str(Path(tmp) / "features"))
            print(f"{feature_set:<14} {len(audio) / uncached:8.1f} {seconds / uncached:17.1f} "
                  f"{len(audio) / cached:13.0f} {uncached / cached:14.0f}x")  # fmt: skip
        if not args.no_runs:
            print("\nwhole SVM run (fit on LOSO fold 0 with the C/gamma grid, then test), fresh feature cache:")
            print(f"{'feature set':<14} {'uncached s':>11} {'cached s':>9} {'extracted 1st':>14} {'extracted 2nd':>14}"
                  f" {'test UA':>8}")  # fmt: skip
            for feature_set in args.feature_sets:
                features, runs = str(Path(tmp) / f"run-{feature_set}"), str(Path(tmp) / f"runs-{feature_set}")
                Path(runs).mkdir()
                first, results = whole_run(feature_set, features, runs, args.cache)
                second, again = whole_run(feature_set, features, runs, args.cache)
                extracted = [r["feature_cache"]["fit"]["extracted"] + r["feature_cache"]["test"]["extracted"]
                             for r in (results, again)]  # fmt: skip
                print(f"{feature_set:<14} {first:11.1f} {second:9.1f} {extracted[0]:14d} {extracted[1]:14d} "
                      f"{again['test_ua']:8.3f}")  # fmt: skip
    print(f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
