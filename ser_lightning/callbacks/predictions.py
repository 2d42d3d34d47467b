"""Writes ``predict`` output (CSV and JSON; per-frame CSVs for regression models) to the run directory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from ser_lightning.predictions import OutputFormat, Prediction, write_predictions
from ser_lightning.results import run_dir

log = logging.getLogger(__name__)


def batch_records(batch: dict[str, Any]) -> list[Prediction]:
    """The :class:`~ser_lightning.predictions.Prediction` records of one ``predict_step`` output.

    A classifier's step gives ``probs`` and ``predicted``; a regressor's gives ``predictions`` (one
    ``[frames, targets]`` tensor per utterance); both give ``failed`` files (``{"path", "utt_id", "reason",
    "kind"}``), which become ``status: error`` records.
    """
    records = []
    for i, utt in enumerate(batch["utt_id"]):
        record = Prediction(utt_id=str(utt), path=str(batch["path"][i]))
        if "probs" in batch:
            record.posteriors = np.asarray(batch["probs"][i].float().cpu().numpy(), dtype=np.float64)
            record.predicted = batch["predicted"][i]
        else:
            record.frames = batch["predictions"][i].float().cpu().numpy()
        records.append(record)
    for item in batch.get("failed") or []:
        records.append(Prediction(utt_id=str(item["utt_id"]), path=str(item["path"]), status="error",
                                  error=str(item["reason"]), kind=str(item.get("kind", ""))))  # fmt: skip
    return records


class PredictionWriter(BasePredictionWriter):
    """Writes one record per file (:mod:`ser_lightning.predictions`' schemas) into the run directory.

    A classifier writes ``predictions.csv`` (``utt_id, path, predicted, p_<class>..., status, error``) and
    ``predictions.json``; a regressor writes a summary ``predictions.csv`` / ``predictions.json`` and one
    ``frames/<utt_id>.csv`` of per-frame values per file. ``status`` is ``ok``, or ``error`` for a file that could
    not be used (unreadable, empty, NaN/Inf, too short, silent): its ``error`` column says why (the same reason as
    the warning in the log) and its outputs are empty. The Python API
    (:class:`~ser_lightning.inference.EmotionRecognizer`) writes the same files. Under multi-device prediction
    each process writes its own ``predictions.rank<k>.csv`` (and ``.json``).

    Args:
        filename: CSV file name (the JSON file has the same stem).
        formats: which of ``csv`` and ``json`` to write.
    """

    def __init__(self, filename: str = "predictions.csv", formats: list[OutputFormat] | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.filename = filename
        self.formats: list[OutputFormat] = list(formats) if formats is not None else ["csv", "json"]

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
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        records = [r for batch in batches for r in batch_records(batch)]
        regression = hasattr(pl_module, "target_names") and not hasattr(pl_module, "class_names")
        names = {"target_names": list(pl_module.target_names), "frame_rate_hz": float(pl_module.target_rate_hz)} \
            if regression else {"class_names": list(getattr(pl_module, "class_names", []))}  # fmt: skip
        frontend = getattr(pl_module, "frontend", None)
        write_predictions(records, run_dir(trainer), **names, model=type(pl_module).__name__,
                          sample_rate=getattr(frontend, "sample_rate", None), filename=name,
                          formats=self.formats)  # fmt: skip
