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
    """Writes one row per utterance: id, path, predicted class and the posterior of every class.

    The file is ``<run dir>/<filename>`` (one file per process under multi-device prediction:
    ``predictions.rank<k>.csv``).

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
        rows = 0
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["utt_id", "path", "predicted", *(f"p_{c}" for c in class_names)])
            for batch in batches:
                for i, utt in enumerate(batch["utt_id"]):
                    probs = batch["probs"][i].tolist()
                    writer.writerow([utt, batch["path"][i], batch["predicted"][i], *(f"{p:.6f}" for p in probs)])
                    rows += 1
        log.info("wrote %d predictions to %s", rows, path)
