"""Robustness suite cost: wall time of the noise + adversarial evaluations against the clean test they follow.

Run by hand (prints a table):

    python benchmarks/bench_robustness.py [--epochs 0] [--size default] [--accelerator cpu] [--json out.json]

A DenseHighway at the sizes of ``configs/models/dense_highway.yaml`` (randomly initialised, or trained for
``--epochs`` epochs) is tested on the embedded corpus' leave-one-speaker-out fold 0 test split. First the clean
test alone (after a warm-up run): its test loop, from the test epoch's start to its end (without the Trainer's
setup), is T (the trainer.test wall time is shown too), the median of ``--repeats`` runs before and as many
after the suite, since the machine may be shared. Then the same test with the full suite (``NoiseRobustness``:
5 noises x {0, 10, 20} dB; ``AdversarialRobustness``: FGSM + BIM-10 on the features): its evaluation part,
measured inside the callbacks after the clean pass, is W. Passes P over the test split,
counting a forward+backward as 2 passes: noise 15 forwards; FGSM 1 forward+backward + 1 forward = 3; BIM 10
forward+backward + 1 forward = 21; P = 39 (the clean posteriors are captured from the test pass itself: no
extra pass). ratio = W / (T x P); the target is <= 1.3 (no re-reading or needless re-featurising of audio).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from ser_lightning.callbacks import AdversarialRobustness, NoiseRobustness
from ser_lightning.data import SyntheticDataModule
from ser_lightning.models import DenseHighway


def make_trainer(root: Path, callbacks: list[pl.Callback], accelerator: str, **kwargs: object) -> pl.Trainer:
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=pl.loggers.CSVLogger(str(root)),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        **kwargs,
    )


def timed_test(trainer: pl.Trainer, model: DenseHighway, datamodule: SyntheticDataModule) -> tuple[float, dict]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    (metrics,) = trainer.test(model, datamodule, verbose=False)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=0, help="training epochs before the test (0: random init)")
    parser.add_argument("--size", default="default", choices=["tiny", "default", "large"])
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--bim-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="clean test runs before and after the suite")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric", "ser_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    pl.seed_everything(0, verbose=False)
    datamodule = SyntheticDataModule(size=args.size, batch_size=32, eval_batch_size=args.eval_batch_size,
                                     segment_seconds=2.575)  # fmt: skip
    model = DenseHighway(num_classes=4, class_names=datamodule.class_names)  # configs/models/dense_highway.yaml
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.epochs:
            fit = make_trainer(root / "fit", [], args.accelerator, max_epochs=args.epochs, enable_checkpointing=False)
            fit.fit(model, datamodule)
        model.eval()
        make_trainer(root / "warmup", [], args.accelerator).test(model, datamodule, verbose=False)

        def clean_test(name: str) -> tuple[float, float, dict]:
            trainer = make_trainer(root / name, [], args.accelerator)
            wall, metrics = timed_test(trainer, model, datamodule)
            # The test loop, from the test epoch's start to its end (without the Trainer's setup).
            loop = json.loads((Path(trainer.log_dir) / "results.json").read_text())["test_seconds"]
            return loop, wall, metrics

        # T is the median of clean runs before and after the suite (the machine may be shared).
        runs = [clean_test(f"clean{i}") for i in range(args.repeats)]
        noise = NoiseRobustness()  # 5 procedural noises x {0, 10, 20} dB
        adversarial = AdversarialRobustness(bim_steps=args.bim_steps)  # FGSM + BIM, epsilon 0.08 on the features
        trainer = make_trainer(root / "suite", [noise, adversarial], args.accelerator)
        suite_seconds, metrics = timed_test(trainer, model, datamodule)
        runs += [clean_test(f"clean_after{i}") for i in range(args.repeats)]
        clean_seconds = statistics.median(r[0] for r in runs)
        clean_wall = statistics.median(r[1] for r in runs)
        clean = runs[0][2]
        results = json.loads((Path(trainer.log_dir) / "results.json").read_text())

    utterances = results["num_test_utterances"]
    passes = {"noise": len(noise.categories) * len(noise.snr_db), "fgsm": 3, "bim": 2 * args.bim_steps + 1}
    parts = {
        "noise": noise.seconds["total"],
        "fgsm": adversarial.seconds["fgsm"],
        "bim": adversarial.seconds["bim"],
    }
    suite = noise.seconds["total"] + adversarial.seconds["total"]
    total_passes = sum(passes.values())
    rows = [
        ("clean test alone (trainer.test wall)", f"{clean_wall:8.2f} s", "median; includes the Trainer's setup"),
        ("clean test loop T", f"{clean_seconds:8.2f} s",
         f"median of {len(runs)} (min {min(r[0] for r in runs):.2f}, max {max(r[0] for r in runs):.2f})"),
        ("suite run (trainer.test wall)", f"{suite_seconds:8.2f} s", "clean pass + suite"),
        ("suite part W", f"{suite:8.2f} s", f"P = {total_passes} passes"),
        ("  noise (15 cells)", f"{parts['noise']:8.2f} s",
         f"mixing {noise.seconds['noise_mixing']:.2f} s, model {noise.seconds['model']:.2f} s; "
         f"ratio {parts['noise'] / (clean_seconds * passes['noise']):.2f}"),
        ("  FGSM", f"{parts['fgsm']:8.2f} s", f"3 passes; ratio {parts['fgsm'] / (clean_seconds * 3):.2f}"),
        (f"  BIM-{args.bim_steps}", f"{parts['bim']:8.2f} s",
         f"{passes['bim']} passes; ratio {parts['bim'] / (clean_seconds * passes['bim']):.2f}"),
        ("ratio W / (T x P)", f"{suite / (clean_seconds * total_passes):8.2f}", "target <= 1.3"),
        ("  (with T = the trainer.test wall)", f"{suite / (clean_wall * total_passes):8.2f}", ""),
    ]  # fmt: skip
    device = torch.cuda.get_device_name() if args.accelerator != "cpu" and torch.cuda.is_available() else "CPU"
    print(f"DenseHighway ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{'random init' if not args.epochs else f'{args.epochs} epochs'}), synthetic {args.size} loso fold 0: "
          f"{utterances} test utterances, eval batch {args.eval_batch_size}, {device}, "
          f"{torch.get_num_threads()} threads; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"clean UA {clean['test_ua']:.3f}; mean noise UA 0/10/20 dB "
          f"{metrics['test_ua_noise_snr0db']:.3f}/{metrics['test_ua_noise_snr10db']:.3f}/"
          f"{metrics['test_ua_noise_snr20db']:.3f}; FGSM {metrics['test_ua_fgsm']:.3f}; "
          f"BIM {metrics['test_ua_bim']:.3f}")
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value}  {note}")
    if args.json:
        figures = {"T": clean_seconds, "T_wall": clean_wall, "W": suite, "P": total_passes, "parts": parts,
                   "passes": passes, "ratio": suite / (clean_seconds * total_passes), "utterances": utterances,
                   "device": device}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=2))

if __name__ == "__main__":
    main()
