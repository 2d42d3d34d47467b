"""Exact resume: a run killed with SIGKILL and resumed from ``last.ckpt`` ends as the uninterrupted run does."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ser_lightning.data.dataset import UtteranceDataset
from ser_lightning.data.sampling import EpochSampler, decode_key, encode_key

from .conftest import CONFIGS, REPO

MAIN = str(CONFIGS / "dense_highway.yaml")
TINY = str(CONFIGS / "data" / "synthetic_tiny.yaml")
SMALL = ["--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2"]
NOISE = '{"class_path": "ser_lightning.augment.Recipe", "init_args": {"name": "noise"}}'
EPOCHS = 2


def fit_args(root: Path, corpus: Path, epochs: int = EPOCHS, workers: int = 0, batches: int | None = 3) -> list[str]:
    """A short CSV-logged fit of the narrow model on the tiny corpus, with noise augmentation."""
    limit = ["--trainer.limit_train_batches", str(batches)] if batches else []
    return [
        "fit", "--config", MAIN, "--data", TINY,
        "--data.init_args.root", str(corpus.parent),
        "--data.init_args.augmentation", NOISE,
        "--data.init_args.num_workers", str(workers),
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.init_args.save_dir", str(root),
        "--trainer.logger.init_args.name", "run",
        "--trainer.logger.init_args.flush_logs_every_n_steps", "1",
        "--trainer.log_every_n_steps", "1",
        "--trainer.max_epochs", str(epochs),
        *limit,
        "--trainer.enable_progress_bar", "false",
        *SMALL,
    ]  # fmt: skip


def launch(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "ser_lightning", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def run(args: list[str], cwd: Path) -> None:
    proc = launch(args, cwd)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]


def ckpt_epoch(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:
        return None


def epoch_table(run_dir: Path) -> dict[int, list[dict[str, str]]]:
    """``{epoch: rows}``: every row of ``metrics.csv`` (per-step ``train_loss``, per-epoch ``train_*``/``val_*``,
    the learning rate), as the exact text written, by epoch (rows without one count for the next)."""
    table: dict[int, list[dict[str, str]]] = {}
    with (run_dir / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    epoch = 0
    for row in rows:
        epoch = int(float(row["epoch"])) if row.get("epoch") else epoch
        table.setdefault(epoch, []).append({k: v for k, v in row.items() if v})
    return table


def summary(run_dir: Path) -> dict[str, object]:
    results = json.loads((run_dir / "results.json").read_text())
    best = sorted(p.name for p in (run_dir / "checkpoints").glob("best-*.ckpt"))
    test = {k: v for k, v in results.items()
            if k.startswith("test_") and isinstance(v, float) and not k.endswith("_seconds")}  # fmt: skip
    return {"best": best, "test": test, "table": epoch_table(run_dir)}


def kill_after(args: list[str], cwd: Path, last: Path, epoch: int) -> int:
    """Runs ``fit`` and SIGKILLs it as soon as ``last`` holds epoch ``epoch`` (or later); returns that epoch."""
    proc = launch(args, cwd)
    seen = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists():
                seen = ckpt_epoch(last)
                if seen is not None and seen >= epoch:
                    break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed: {proc.stdout.read()[-3000:]}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return int(ckpt_epoch(last))


def check_resume(
    tmp_path: Path,
    corpus: Path,
    workers: int,
    kill_epoch: int,
    shorthand: bool = False,
    epochs: int = EPOCHS,
    batches: int | None = 3,
) -> None:
    ref_root, res_root = tmp_path / "ref", tmp_path / "res"
    run(fit_args(ref_root, corpus, epochs, workers, batches), tmp_path)
    ref_dir = ref_root / "run" / "version_0"
    reference = summary(ref_dir)
    assert set(range(epochs)) <= set(reference["table"])  # and the test's rows, after the last epoch

    res_dir = res_root / "run" / "version_0"
    last = res_dir / "checkpoints" / "last.ckpt"
    killed_at = kill_after(fit_args(res_root, corpus, epochs, workers, batches), tmp_path, last, kill_epoch)
    assert killed_at < epochs - 1, "the kill came too late to test a resume"
    results = res_dir / "results.json"
    assert not results.exists() or "test_ua" not in json.loads(results.read_text())
    resume = ["--resume", str(res_dir)] if shorthand else ["--ckpt_path", str(last)]
    run([*fit_args(res_root, corpus, epochs, workers, batches), *resume], tmp_path)

    assert sorted(p.name for p in (res_root / "run").iterdir()) == ["version_0"], "the resume made a new run folder"
    resumed = summary(res_dir)
    for epoch in sorted(reference["table"]):
        assert resumed["table"].get(epoch) == reference["table"][epoch], f"epoch {epoch} differs"
    assert resumed["best"] == reference["best"]
    assert resumed["test"] == reference["test"] and resumed["test"]
    logging.getLogger(__name__).info("killed after epoch %d; best %s; test %s", killed_at, resumed["best"],
                                     resumed["test"])  # fmt: skip


@pytest.mark.slow
def test_same_seed_same_run(tmp_path: Path, tiny_corpus: Path) -> None:
    """The precondition: two uninterrupted runs with the same seed log the same numbers (in the default suite,
    the resume test checks it too: the killed run's first epoch must equal the reference's)."""
    tables = []
    for name in ("a", "b"):
        run(fit_args(tmp_path / name, tiny_corpus, epochs=2, workers=0), tmp_path)
        tables.append(summary(tmp_path / name / "run" / "version_0"))
    assert tables[0] == tables[1]


def test_sigkill_and_resume_is_exact(tmp_path: Path, tiny_corpus: Path) -> None:
    """SIGKILL after epoch 0's ``last.ckpt``, resume with ``--ckpt_path``: per-epoch metrics, best checkpoint and
    test figures equal the uninterrupted run's, in the same run folder (no DataLoader workers)."""
    check_resume(tmp_path, tiny_corpus, workers=0, kill_epoch=0)


@pytest.mark.slow
def test_sigkill_and_resume_is_exact_with_a_worker(tmp_path: Path, tiny_corpus: Path) -> None:
    """The same with one persistent DataLoader worker process, resumed with ``--resume <run folder>``."""
    check_resume(tmp_path, tiny_corpus, workers=1, kill_epoch=0, shorthand=True)


def test_resume_needs_a_checkpoint(tmp_path: Path, tiny_corpus: Path) -> None:
    """``--resume`` names a run folder with ``checkpoints/last.ckpt`` or a checkpoint file."""
    from ser_lightning.cli import main

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        main([*fit_args(tmp_path, tiny_corpus), "--resume", str(tmp_path / "missing")])


def test_epoch_keys_reach_the_dataset(tiny_corpus: Path) -> None:
    """The sampler's order is a function of (seed, epoch); the dataset's crops of (seed, epoch, index)."""
    from ser_lightning.data.manifest import read_manifest_csv

    records = read_manifest_csv(tiny_corpus / "manifest.csv", root=tiny_corpus)[:6]
    dataset = UtteranceDataset(records, sorted({r.label for r in records}), 16000, segment_samples=800)
    sampler = EpochSampler(dataset, seed=3)
    sampler.set_epoch(2)
    keys = list(sampler)
    assert sorted(decode_key(k, len(dataset)) for k in keys) == [(2, i) for i in range(len(dataset))]
    sampler.set_epoch(2)
    assert list(sampler) == keys
    sampler.set_epoch(3)
    assert list(sampler) != keys
    assert decode_key(next(iter(sampler)), len(dataset))[0] == 4  # iterated again without set_epoch: next epoch
    first = dataset[encode_key(2, 1, len(dataset))]["waveform"]
    torch.rand(5)  # the global RNG does not matter
    assert torch.equal(dataset[encode_key(2, 1, len(dataset))]["waveform"], first)
    assert dataset[encode_key(2, 1, len(dataset))]["index"] == 1


@pytest.mark.slow
def test_sigkill_in_epoch_4_of_6(tmp_path: Path, tiny_corpus: Path) -> None:
    """The issue's case: six full epochs, killed once epoch 3's ``last.ckpt`` is written (during epoch 4)."""
    check_resume(tmp_path, tiny_corpus, workers=0, kill_epoch=3, epochs=6, batches=None)
