"""Augmentation benchmark: throughput of every named recipe in one process (= one DataLoader worker).

Run by hand:

    python benchmarks/bench_augment.py [--cache DIR] [--utterances 400] [--vad]

The training utterances of the default synthetic corpus (``ensure_corpus(size="default")``, 16 kHz) are read into
memory first, so that only the augmentation is timed: each recipe is called as a dataset calls it
(``recipe(samples, sample_rate)``, seed drawn from torch), over the same utterances, in one process and one torch
thread. Figures are utterances per second and seconds of audio per second (real-time factor: how many seconds of
speech one worker augments per second of wall time); ``none`` is the cost of the call-free loop. ``--vad`` adds the
WebRTC VAD trimmer (mode 2), which runs on every split.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=None, help="folder holding the default synthetic corpus")
    parser.add_argument("--utterances", type=int, default=400, help="utterances per recipe (first N of train)")
    parser.add_argument("--vad", action="store_true", help="also time the WebRTC VAD trimmer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(1)  # one DataLoader worker's share of the machine

    from ser_lightning.audio import read_audio
    from ser_lightning.augment import RECIPES, Recipe, VoiceActivityTrimmer
    from ser_lightning.synth import ensure_corpus, read_manifest

    rate = 16000
    corpus = ensure_corpus(size="default", seed=0, cache_dir=args.cache)
    rows = read_manifest(corpus)[: args.utterances]
    audio = [read_audio(str(corpus / row["path"]), rate) for row in rows]
    seconds = sum(len(a) for a in audio) / rate

    candidates: list[tuple[str, object]] = [("none", None)]
    candidates += [(name, Recipe(name)) for name in RECIPES]  # type: ignore[arg-type]
    if args.vad:
        candidates.append(("vad (mode 2)", VoiceActivityTrimmer(mode=2)))
    results = []
    torch.manual_seed(0)
    for name, aug in candidates:
        if aug is not None:
            aug(audio[0], rate)  # warm-up: imports, babble buffer, FFT plans
        start = time.perf_counter()
        out_seconds = 0.0
        for samples in audio:
            out = samples if aug is None else aug(samples, rate)
            out_seconds += len(out) / rate
        elapsed = max(time.perf_counter() - start, 1e-9)
        results.append((name, len(audio) / elapsed, seconds / elapsed, out_seconds / seconds))

    print(f"\n{len(audio)} utterances, {seconds:.0f} s of audio (mean {seconds / len(audio):.2f} s), 16 kHz, "
          f"1 process, 1 torch thread")  # fmt: skip
    width = max(len(r[0]) for r in results)
    print(f"{'recipe'.ljust(width)} | utterances/s | audio s/s | output/input length")
    print(f"{'-' * width}-|--------------|-----------|--------------------")
    for name, utt_rate, audio_rate, ratio in results:
        shown = "-" if name == "none" else f"{utt_rate:12.0f}"
        shown_audio = "-" if name == "none" else f"{audio_rate:9.0f}"
        print(f"{name.ljust(width)} | {shown:>12} | {shown_audio:>9} | {ratio:18.3f}")


if __name__ == "__main__":
    main()
