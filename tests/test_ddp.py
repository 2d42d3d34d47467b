"""Two CPU processes with DDP must give exactly the metrics of one process (no duplicated utterances)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ser_lightning.cli import main

from .conftest import CONFIGS, REPO
from .test_cli import MAIN, SMALL

CLASSES = "[neutral,happy,angry,sad]"


def data_args(manifest: Path, logs: Path) -> list[str]:
    return [
        "--config", MAIN,
        "--data", "ser_lightning.data.ManifestDataModule",
        "--data.init_args.manifest", str(manifest),
        "--data.init_args.classes", CLASSES,
        "--data.init_args.batch_size", "4",
        "--trainer", str(CONFIGS / "trainer" / "csv.yaml"),
        "--trainer.logger.init_args.save_dir", str(logs),
        "--trainer.enable_progress_bar", "false",
        *SMALL,
    ]  # fmt: skip


def val_metrics(log_dir: Path) -> dict[str, float]:
    with (log_dir / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val_ua")]
    return {k: float(rows[-1][k]) for k in ("val_ua", "val_wa", "val_f1")}


def test_ddp_metrics_equal_single_process(odd_manifest: Path, tmp_path: Path) -> None:
    # A briefly trained checkpoint (one process).
    fit = main(["fit", *data_args(odd_manifest, tmp_path / "fit"), "--trainer.max_epochs", "1",
                "--test_after_fit", "false"])  # fmt: skip
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    single_test = main(["test", *data_args(odd_manifest, tmp_path / "single"), "--ckpt_path", ckpt])
    single = json.loads((Path(single_test.trainer.log_dir) / "results.json").read_text())
    single_val = main(["validate", *data_args(odd_manifest, tmp_path / "single_val"), "--ckpt_path", ckpt])
    assert single["sizes"]["test"] % 2 == 1

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ddp = ["--trainer", str(CONFIGS / "trainer" / "ddp_cpu.yaml"), "--ckpt_path", ckpt]
    for sub, logs in (("test", tmp_path / "ddp"), ("validate", tmp_path / "ddp_val")):
        proc = subprocess.run([sys.executable, "-m", "ser_lightning", sub, *data_args(odd_manifest, logs), *ddp],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
    (ddp_dir,) = (tmp_path / "ddp").glob("*/version_*")
    ddp_results = json.loads((ddp_dir / "results.json").read_text())
    assert sum(map(sum, ddp_results["confusion_matrix"])) == single["sizes"]["test"]
    assert ddp_results["confusion_matrix"] == single["confusion_matrix"]
    for key in ("test_ua", "test_wa", "test_f1"):
        assert ddp_results[key] == pytest.approx(single[key], abs=1e-6)
    # Per-utterance predictions are gathered from both processes: every test utterance once, as in one process.
    ddp_rows = (ddp_dir / ddp_results["test_predictions"]).read_text().splitlines()
    single_rows = (Path(single_test.trainer.log_dir) / single["test_predictions"]).read_text().splitlines()
    assert len(ddp_rows) == single["sizes"]["test"] + 1
    assert [r.split(",")[:4] for r in ddp_rows] == [r.split(",")[:4] for r in single_rows]
    (ddp_val_dir,) = (tmp_path / "ddp_val").glob("*/version_*")
    expected = val_metrics(Path(single_val.trainer.log_dir))
    for key, value in val_metrics(ddp_val_dir).items():
        assert value == pytest.approx(expected[key], abs=1e-6), key
