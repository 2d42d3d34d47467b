"""Writes ``predict`` output to a CSV file in the run directory."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter

from ser_lightning.results import run_dir

log = logging.getLogger(__name__)


class PredictionWriter(BasePredictionWriter):
    """Writes one row per file: id, path, predicted class, the posterior of every class, status and error.

    ``status`` is ``ok``, or ``error`` for a file that could not be used (unreadable, empty, NaN/Inf, too short,
    silent): its ``error`` column says why (the same reason as the warning in the log) and its ``predicted`` and
    posterior columns are empty. The file is ``<run dir>/<filename>`` (one file per process under multi-device
    prediction: ``predictions.rank<k>.csv``).

    Args:
        filename: CSV file name.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any] | None,
    ) -> None:
        """Writes the epoch's predictions."""
        name = self.filename
        if trainer.world_size > 1:
            stem, _, suffix = name.rpartition(".")
            name = f"{stem}.rank{trainer.global_rank}.{suffix}"
        path = run_dir(trainer) / name
        class_names = list(getattr(pl_module, "class_names", []))
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        rows = errors = 0
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["utt_id", "path", "predicted", *(f"p_{c}" for c in class_names), "status", "error"])
            for batch in batches:
                for i, utt in enumerate(batch["utt_id"]):
                    probs = batch["probs"][i].tolist()
                    writer.writerow([utt, batch["path"][i], batch["predicted"][i], *(f"{p:.6f}" for p in probs),
                                     "ok", ""])  # fmt: skip
                    rows += 1
                for item in batch.get("failed") or []:
                    writer.writerow([item["utt_id"], item["path"], "", *([""] * len(class_names)), "error",
                                     item["reason"]])  # fmt: skip
                    errors += 1
        if errors:
            log.warning("%d of %d files could not be used (status 'error' in %s)", errors, rows + errors, path)
        log.info("wrote %d predictions to %s", rows, path)
