"""The leakage demonstration (docs/leakage.md): augmenting before splitting inflates UA.

Paul et al. 2025 (EmoAugNet) augment every file ten times and then split the pool at random, so copies
of one recording land in training and in test. This script reproduces that protocol on the embedded corpus and
puts its UA next to honest ones, with the same model, training steps and 60/15/25 split fractions:

1. ``offline 10x + random split``: ``python -m ser_lightning.data.offline`` writes the original and ten
   augmented copies (Paul et al. 2025's recipe) of every recording; a random utterance split of the pool
   (``configs/leakage/offline_augmented_random_split.yaml``);
2. ``offline 10x + speaker-independent split``: the same pool split by session, so all copies of a recording
   stay on one side (augmenting before splitting is harmless when the split is by speaker);
3. ``random split``: the same random utterance split of the original recordings, no augmentation
   (speaker-dependent, but no copies);
4. ``speaker-independent + on-the-fly``: a session-grouped hold-out (no speaker or session on two sides), seed
   004's recipe applied on the fly to the training split only (``configs/augment/emoaugnet.yaml``);
5. ``speaker-independent``: the same split without augmentation.

Every row trains ``--steps`` optimiser steps (the leaky row's training set is 11 times larger, so it sees fewer
epochs) with the config's own model selection (best validation UA) and early stopping. Run by hand (on 2 CPU
cores about 25 minutes, including writing ~8,800 files; the pool is reused when it exists):

    python benchmarks/leakage_demo.py [--steps 600] [--copies 10] [--model cnn_bilstm_mlp] [--workdir runs/leakage]
        [--rows 0,2]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from ser_lightning.cli import main as cli_main
from ser_lightning.data.offline import main as offline_main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def fit(name: str, model: str, steps: int, workdir: Path, extra: list[str]) -> dict:
    args = ["fit", "--config", str(CONFIGS / f"{model}.yaml"), *extra,
            "--trainer.max_steps", str(steps), "--trainer.max_epochs", "10000", "--trainer.max_time", "00:00:30:00",
            "--trainer.logger.init_args.save_dir", str(workdir / "runs"), "--trainer.logger.init_args.name", name,
            "--trainer.default_root_dir", str(workdir / "runs"), "--trainer.enable_progress_bar", "false"]  # fmt: skip
    started = time.perf_counter()
    cli = cli_main(args)
    results = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    results["wall_seconds"] = time.perf_counter() - started
    results["epochs"] = cli.trainer.current_epoch
    # The share of test utterances whose recording (or an augmented copy of it) was trained on.
    split = cli.datamodule.split
    trained = {r.extra.get("source_utt", r.utt_id) for r in split.train}
    results["trained_on"] = sum(r.extra.get("source_utt", r.utt_id) in trained for r in split.test) / len(split.test)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="training steps per row")
    parser.add_argument("--copies", type=int, default=10, help="augmented copies per recording (Paul et al. 2025: 10)")
    parser.add_argument("--model", default="cnn_bilstm_mlp", help="a full run configs/<model>.yaml")
    parser.add_argument("--workdir", default="runs/leakage", help="where the augmented corpus and runs go")
    parser.add_argument("--rows", default="", help="comma-separated row numbers to run (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ser_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    workdir = Path(args.workdir).resolve()
    corpus = workdir / "offline_augmented"
    started = time.perf_counter()
    if not (corpus / "manifest.csv").exists():
        offline_main(["--data", str(CONFIGS / "data" / "synthetic.yaml"), "--out", str(corpus),
                      "--copies", str(args.copies)])  # fmt: skip
    augment_seconds = time.perf_counter() - started
    holdout = ["--data.init_args.protocol", "holdout"]
    pool = ["--data", str(CONFIGS / "leakage" / "offline_augmented_random_split.yaml"),
            "--data.init_args.manifest", str(corpus / "manifest.csv")]  # fmt: skip
    specs = [
        ("offline 10x + random split", "leaky_offline_augmented", pool),
        ("offline 10x + speaker-independent split", "offline_augmented_speaker_independent",
         [*pool, "--data.init_args.speaker_dependent", "false"]),
        ("random split", "random_split", [*holdout, "--data.init_args.speaker_dependent", "true"]),
        ("speaker-independent + on-the-fly", "speaker_independent_on_the_fly",
         [*holdout, "--config", str(CONFIGS / "augment" / "emoaugnet.yaml")]),
        ("speaker-independent", "speaker_independent", holdout),
    ]  # fmt: skip
    chosen = [int(i) for i in args.rows.split(",")] if args.rows else range(len(specs))
    header = ("protocol", "train / test utterances", "test recordings trained on", "epochs", "test UA", "test WA")
    table = [header]
    for index in chosen:
        label, name, extra = specs[index]
        r = fit(name, args.model, args.steps, workdir, extra)
        sizes = r.get("sizes", {})
        table.append((label, f"{sizes.get('train', '?')} / {sizes.get('test', '?')}", f"{r['trained_on']:.0%}",
                      str(r["epochs"]), f"{r['test_ua']:.3f}", f"{r['test_wa']:.3f}"))  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"model {args.model}, {args.steps} training steps per row; writing the augmented corpus took "
          f"{augment_seconds:.0f} s")
    for i, row in enumerate(table):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print(" | ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
