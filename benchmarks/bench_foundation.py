"""Foundation benchmark: corpus generation, training throughput vs. the bare network, predict real-time factor.

Run by hand (takes a few minutes on 2 cores):

    python benchmarks/bench_foundation.py [--batches 12] [--cache DIR]

Prints a table. The training-throughput ratio compares segments/s of the real training loop (Lightning, data
loading from disk, in-model front-end) with forward+backward+step of the same network on pre-made feature tensors
of the same shape; 1.0 means data loading and the framework cost nothing.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from ser_lightning.data import SyntheticDataModule
from ser_lightning.models import DenseHighway
from ser_lightning.synth import ensure_corpus


class _Clock(pl.Callback):
    """Times training batches after a warm-up."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.end = 0.0
        self.segments = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.segments += batch["label"].shape[0]
            self.end = time.perf_counter()


def bare_throughput(model: DenseHighway, batch_size: int, steps: int, warmup: int) -> float:
    net = model.network.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 1, model.hparams.n_bins, model.segment_frames)
    y = torch.randint(0, model.num_classes, (batch_size,))
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=12, help="timed training batches")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cache", default=None, help="corpus cache for the training/predict runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[tuple[str, str]] = []

    with tempfile.TemporaryDirectory() as fresh:
        start = time.perf_counter()
        corpus = ensure_corpus(size="default", seed=0, cache_dir=fresh)
        gen = time.perf_counter() - start
        n = sum(1 for _ in (corpus / "wav").rglob("*.wav"))
        rows.append(("corpus generation, default size (fresh process)", f"{gen:.1f} s for {n} utterances"))
        if args.cache:
            target = Path(args.cache) / corpus.name
            if not target.exists():
                shutil.copytree(corpus, target)
        cache = args.cache or tempfile.mkdtemp()
        if not args.cache:
            shutil.copytree(corpus, Path(cache) / corpus.name)

    torch.manual_seed(0)
    data = SyntheticDataModule(root=cache, size="default", batch_size=32, segment_seconds=2.575)
    model = DenseHighway(num_classes=data.num_classes, class_names=data.class_names)
    clock = _Clock(args.warmup)
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=args.warmup + args.batches, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    loop = clock.segments / (clock.end - clock.start)
    bare = bare_throughput(model, 32, args.batches, args.warmup)
    rows.append(("training loop throughput (Lightning, from disk)", f"{loop:.1f} segments/s"))
    rows.append(("bare network forward+backward+step", f"{bare:.1f} segments/s"))
    rows.append(("ratio loop / bare (target >= 0.9)", f"{loop / bare:.3f}"))

    data.setup("test")
    audio_seconds = sum(r.duration for r in data.split.test)
    model.eval()
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.predict(model, dataloaders=data.test_dataloader())
    elapsed = time.perf_counter() - start
    rows.append(
        (
            "predict real-time factor (CPU, test split)",
            f"{elapsed / audio_seconds:.4f} ({audio_seconds:.0f} s of audio in {elapsed:.1f} s)",
        )
    )
    rows.append(("threads", str(torch.get_num_threads())))

    width = max(len(k) for k, _ in rows)
    print(f"\n{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 40}")
    for key, value in rows:
        print(f"{key.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
