"""The clean test set cached for the robustness callbacks, and their base :class:`TestSetRobustness`.

During the normal (clean) test pass the test batches are cached on the CPU (waveforms, lengths, labels,
utterance ids) together with the clean posteriors the model computed for them; at the end of the test epoch each
robustness callback evaluates its perturbed conditions on that cache, so audio is read and decoded once. Several
robustness callbacks on one trainer share a single cache (the first one in ``trainer.callbacks`` fills it, the
last one frees it). The cache holds the whole test split's waveforms (of this process' shard under DDP) in CPU
memory for the duration of the test epoch.

Metrics (UA, WA, macro-F1 as :mod:`ser_lightning.metrics` defines them) are torchmetrics objects, synchronised
across processes, logged with ``pl_module.log`` (so they appear in ``trainer.test()``'s result and in the
loggers), written as CSV/JSON tables into the run directory and merged into ``results.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torchmetrics import MetricCollection

from ser_lightning.metrics import METRIC_NAMES, classification_metrics
from ser_lightning.results import run_dir, update_results

log = logging.getLogger(__name__)


def write_table(directory: Path, stem: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Writes ``<stem>.csv`` (the rows) and ``<stem>.json`` (the summary, rows included).

    Args:
        directory: the run directory.
        stem: the file stem (a callback's ``name``).
        rows: the table's rows; the CSV's columns are their keys, in first-seen order.
        summary: the JSON document.
    """
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with (directory / f"{stem}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in columns} for row in rows)
    (directory / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")


@dataclass
class CachedBatch:
    """One clean test batch kept on the CPU for the robustness evaluations.

    Attributes:
        waveform: ``[B, T]`` zero-padded waveforms.
        lengths: ``[B]`` valid samples.
        labels: ``[B]`` class indices.
        utt_ids: utterance ids (seed the noise).
        clean_probs: ``[B, C]`` posteriors of the clean test pass, if they were captured.
    """

    waveform: Tensor
    lengths: Tensor
    labels: Tensor
    utt_ids: list[str]
    clean_probs: Tensor | None = None


class TestCache:
    """The clean test batches of one test epoch, shared by every robustness callback of a trainer."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.batches: list[CachedBatch] = []
        self.captured: Tensor | None = None
        self._hook: Any = None

    def clear(self) -> None:
        """Frees the cached batches and removes the forward hook."""
        self.batches = []
        self.captured = None
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def attach(self, module: nn.Module) -> None:
        """Captures the module's outputs, so the clean posteriors of the test pass are kept without a new pass."""

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.dim() == 2:
                self.captured = output

        self._hook = module.register_forward_hook(hook)

    def add(self, batch: dict[str, Any], num_classes: int) -> None:
        """Stores a test batch, and the posteriors captured for it, as CPU tensors usable outside inference mode."""
        with torch.inference_mode(False):
            waveform = batch["waveform"].detach().to("cpu", copy=True).clone()
            size = waveform.shape[0]
            probs = self.captured
            if probs is not None and tuple(probs.shape) == (size, num_classes):
                probs = probs.detach().float().to("cpu", copy=True).clone()
            else:
                probs = None
            self.batches.append(
                CachedBatch(
                    waveform=waveform,
                    lengths=torch.as_tensor(batch["length"]).detach().to("cpu", copy=True).clone().long(),
                    labels=torch.as_tensor(batch["label"]).detach().to("cpu", copy=True).clone().long(),
                    utt_ids=[str(u) for u in batch["utt_id"]],
                    clean_probs=probs,
                )
            )
        self.captured = None


class TestSetRobustness(Callback, ABC):
    """Base of the robustness callbacks: caches the clean test batches, then evaluates perturbed versions.

    During ``trainer.test`` the batches (waveforms on the CPU, lengths, labels, utterance ids) and the clean
    posteriors of the model are cached in ``on_test_batch_end``; ``on_test_epoch_end`` runs :meth:`evaluate`
    over the cache, logs the returned metrics, and (on global rank zero, not under ``fast_dev_run``) writes the
    tables. The cache holds the test split's waveforms in CPU memory until the epoch ends; all robustness
    callbacks of a trainer share one cache. Model calls run on the module's device inside the precision
    plugin's forward context, so ``bf16-mixed``/``16-mixed`` runs are evaluated as their clean test.
    """

    __test__ = False  # not a pytest test class
    name = "robustness"
    """File stem and ``results.json`` key."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: TestCache | None = None
        self.seconds: dict[str, float] = {}
        """Wall time of the last evaluation's parts (seconds)."""

    # --------------------------------------------------------------------------------------- sharing
    @staticmethod
    def _peers(trainer: pl.Trainer) -> list[TestSetRobustness]:
        return [cb for cb in trainer.callbacks if isinstance(cb, TestSetRobustness)]

    def _is_owner(self, trainer: pl.Trainer) -> bool:
        peers = self._peers(trainer)
        return bool(peers) and peers[0] is self

    def _shared_cache(self, trainer: pl.Trainer) -> TestCache:
        owner = self._peers(trainer)[0]
        if owner._cache is None:
            raise RuntimeError("the robustness test cache is missing: on_test_epoch_start did not run")
        return owner._cache

    # ----------------------------------------------------------------------------------------- hooks
    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Checks the module and starts an empty cache (the first robustness callback only)."""
        self.check_module(pl_module)
        if self._is_owner(trainer):
            if self._cache is not None:
                self._cache.clear()
            self._cache = TestCache()
            self._cache.attach(pl_module)

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Forgets posteriors captured outside the batch's test step."""
        if self._is_owner(trainer) and self._cache is not None:
            self._cache.captured = None

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Caches the clean batch on the CPU."""
        if self._is_owner(trainer) and self._cache is not None:
            self._cache.add(batch, int(pl_module.num_classes))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Evaluates, logs, writes the tables; the last robustness callback frees the shared cache."""
        cache = self._shared_cache(trainer)
        try:
            started = time.perf_counter()
            self.seconds = {}
            metrics, summary = self.evaluate(trainer, pl_module, cache.batches)
            self.seconds["total"] = time.perf_counter() - started
            summary["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
            for key, value in metrics.items():
                pl_module.log(key, value, sync_dist=False)
            if trainer.sanity_checking or trainer.fast_dev_run:
                return
            directory = run_dir(trainer)  # a collective under DDP: every process calls it
            if trainer.is_global_zero:
                self.write(trainer, directory, summary)
        finally:
            if self._peers(trainer)[-1] is self:
                cache.clear()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Frees the cache when the run fails."""
        if self._cache is not None:
            self._cache.clear()

    # -------------------------------------------------------------------------------------- helpers
    def check_module(self, pl_module: pl.LightningModule) -> None:
        """Raises ``TypeError`` if the module is not a classifier whose forward gives utterance posteriors."""
        if not isinstance(getattr(pl_module, "num_classes", None), int):
            raise TypeError(
                f"{type(self).__name__} needs a classification module with `num_classes` whose forward(waveform, "
                f"lengths) returns class posteriors (e.g. a SERClassificationTask); got {type(pl_module).__name__}"
            )

    @staticmethod
    @contextmanager
    def model_context(trainer: pl.Trainer | None) -> Iterator[None]:
        """The precision plugin's forward context (autocast under mixed precision); nothing without a trainer."""
        if trainer is None:
            yield
            return
        with trainer.precision_plugin.forward_context():
            yield

    def clean_probs(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: CachedBatch) -> Tensor:
        """The clean posteriors of a cached batch on the module's device (captured, else computed once)."""
        if batch.clean_probs is None:
            batch.clean_probs = self.predict(trainer, pl_module, batch.waveform, batch.lengths).float().cpu()
        return batch.clean_probs.to(pl_module.device)

    @staticmethod
    def new_metrics(pl_module: pl.LightningModule) -> MetricCollection:
        """UA, WA and F1 (:func:`ser_lightning.metrics.classification_metrics`) on the module's device.

        The states live where the module does, so that ``compute`` synchronises them under DDP.

        Args:
            pl_module: the tested classifier (its ``num_classes`` and device).
        """
        return classification_metrics(int(pl_module.num_classes)).to(pl_module.device)

    @staticmethod
    def scores(metrics: MetricCollection) -> dict[str, float]:
        """Computes (synchronised across processes) UA, WA and F1, in that order.

        Args:
            metrics: a collection made by :meth:`new_metrics` and updated with posteriors and labels.
        """
        values = metrics.compute()
        return {k: float(values[k]) for k in METRIC_NAMES}

    def predict(self, trainer: pl.Trainer, pl_module: pl.LightningModule, waveform: Tensor, lengths: Tensor) -> Tensor:
        """Posteriors ``pl_module(waveform, lengths)`` without gradients, on the module's device."""
        device = pl_module.device
        with torch.no_grad(), self.model_context(trainer):
            return pl_module(waveform.to(device), lengths.to(device)).float()

    @staticmethod
    def count(trainer: pl.Trainer, value: int, device: torch.device) -> int:
        """Sums an integer over all processes."""
        total = trainer.strategy.reduce(torch.tensor(float(value), device=device), reduce_op="sum")
        return round(float(total))

    @abstractmethod
    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[CachedBatch]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Runs the evaluation on every process.

        Args:
            trainer: the trainer.
            pl_module: the tested module (in eval mode).
            batches: this process' cached clean test batches.

        Returns:
            ``(metrics to log, summary)``; the summary (with a ``rows`` table) goes to the files and results.
        """

    def write(self, trainer: pl.Trainer, directory: Path, summary: dict[str, Any]) -> None:
        """Writes ``<name>.csv``/``.json`` and the ``<name>`` entry of ``results.json`` (global rank zero only).

        Args:
            trainer: the trainer.
            directory: the run directory.
            summary: the summary :meth:`evaluate` returned.
        """
        write_table(directory, self.name, summary["rows"], summary)
        update_results(directory, {self.name: summary})
        log.info("%s table written to %s", self.name.replace("_", " "), directory / f"{self.name}.csv")
