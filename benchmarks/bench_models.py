"""Architecture benchmark: parameters, CPU forward time per second of audio, training throughput, and test UA
on the embedded corpus after the same short training budget.

Run by hand (the UA column trains every architecture for ``--budget`` seconds; ``--no-train`` skips it):

    python benchmarks/bench_models.py [--budget 120] [--only dense_highway,cnn] [--no-train]

Models are built from ``configs/models/<name>.yaml`` (switch variants included); the UA runs use the full run
``configs/<name>.yaml`` (it may set the data's sample rate), on its corpus and protocol (the embedded corpus,
leave-one-speaker-out fold 0). Switch variants (configs/models
files without a full run) get the first four columns.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

import ser_lightning.models  # noqa: F401
from ser_lightning.cli import main as cli_main
from ser_lightning.models.classification import SERClassificationTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def build(path: Path) -> SERClassificationTask:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(SERClassificationTask, "model")
    cfg = parser.parse_args(["--model", str(path), "--model.init_args.num_classes", "4"])
    return parser.instantiate(cfg).model


def forward_seconds_per_audio_second(model: SERClassificationTask, repeats: int = 3) -> float:
    rate = int(model.hparams.get("sample_rate", 16000))
    wav = torch.randn(8, 4 * rate) * 0.1
    lengths = torch.full((8,), 4 * rate)
    model.eval()
    with torch.no_grad():
        model(wav, lengths)
        start = time.perf_counter()
        for _ in range(repeats):
            model(wav, lengths)
    return (time.perf_counter() - start) / repeats / 32.0


def training_segments_per_second(model: SERClassificationTask, steps: int = 3) -> float:
    samples = model.frontend.segment_samples(model.segment_frames)
    batch = {"waveform": torch.randn(16, samples) * 0.1, "length": torch.full((16,), samples),
             "label": torch.randint(0, 4, (16,))}  # fmt: skip
    model.train()
    model.log = lambda *args, **kwargs: None  # no trainer attached
    model.log_dict = lambda *args, **kwargs: None
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        loss = model.training_step(batch, i)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * 16 / (time.perf_counter() - start)


def test_ua_after_budget(name: str, budget: int, workdir: Path) -> float | None:
    args = ["fit", "--config", str(CONFIGS / f"{name}.yaml")]
    minutes, seconds = divmod(budget, 60)
    args += ["--trainer.max_time", f"00:00:{minutes:02d}:{seconds:02d}", "--trainer.max_epochs", "1000",
             "--trainer.logger.init_args.save_dir", str(workdir), "--trainer.default_root_dir", str(workdir),
             "--trainer.enable_progress_bar", "false"]  # fmt: skip
    cli = cli_main(args)
    results = Path(cli.trainer.log_dir) / "results.json"
    return json.loads(results.read_text())["test_ua"] if results.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=120, help="training seconds per architecture for the UA column")
    parser.add_argument("--only", default="", help="comma-separated config names (default: all)")
    parser.add_argument("--no-train", action="store_true", help="skip the UA column")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("ser_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    names = sorted(p.stem for p in (CONFIGS / "models").glob("*.yaml"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                model = build(CONFIGS / "models" / f"{name}.yaml")
            except Exception as err:  # a regression model, say: not a classification task
                logging.getLogger(__name__).info("%s: %s", name, err)
                rows.append((name, "-", "-", "-", "not a classification model"))
                continue
            params = sum(p.numel() for p in model.parameters())
            fwd = forward_seconds_per_audio_second(model)
            thr = training_segments_per_second(model)
            # The UA column trains the architectures that have a full run (configs/<name>.yaml), not every switch.
            trains = not args.no_train and (CONFIGS / f"{name}.yaml").exists()
            ua = test_ua_after_budget(name, args.budget, Path(tmp)) if trains else None
            rows.append((name, f"{params / 1e6:.3f} M", f"{fwd * 1000:.2f} ms", f"{thr:.1f}",
                         "-" if ua is None else f"{ua:.3f}"))  # fmt: skip
    header = ("model", "parameters", "forward per s of audio", "train segments/s", f"test UA ({args.budget} s)")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
