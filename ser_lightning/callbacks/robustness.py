"""Robustness evaluation after ``test``: the test split under additive noise and under adversarial attacks.

Both callbacks share :class:`TestSetRobustness`: during the normal (clean) test pass the test batches are
cached on the CPU (waveforms, lengths, labels, utterance ids) together with the clean posteriors the model
computed for them; at the end of the test epoch each callback evaluates its perturbed conditions on that cache,
so audio is read and decoded once. Several robustness callbacks on one trainer share a single cache (the first
one in ``trainer.callbacks`` fills it, the last one frees it). The cache holds the whole test split's
waveforms (of this process' shard under DDP) in CPU memory for the duration of the test epoch.

* :class:`NoiseRobustness`: every (noise category, SNR) of a grid, mismatched condition (the model is
  whatever was trained; only the test inputs are noisy), with noise seeded per (seed, category, utterance id)
  so that every model, batch size and process layout sees identical noisy inputs (seed 000 §5.2).
* :class:`AdversarialRobustness`: FGSM and BIM against the input features (seed 000 §5.3, ε = 0.08) or the
  waveform (ε stated as a perturbation SNR). The attacks are the pure functions :func:`fgsm` and :func:`bim`.

Metrics (UA = macro recall, WA = accuracy, macro-F1) are torchmetrics objects, synchronised across processes,
logged with ``pl_module.log`` (so they appear in ``trainer.test()``'s result and in the loggers), written as
CSV/JSON tables into the run directory and merged into ``results.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall

from ser_lightning.augment.noise import NoiseBank, ProceduralNoiseBank, mix_at_snr
from ser_lightning.results import log_figure, run_dir, update_results

log = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(x, y) -> scalar loss`` of an attack."""


# ----------------------------------------------------------------------------------------------- attacks
def _input_gradient(loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
    """Gradient of ``loss_fn(x, y)`` with respect to ``x`` only (no gradient is accumulated on parameters)."""
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        loss = loss_fn(xg, y)
        (grad,) = torch.autograd.grad(loss, xg)
    return grad


def _check_attack(x: Tensor, epsilon: float | Tensor, clamp: tuple[float, float] | None, mask: Tensor | None) -> None:
    if isinstance(epsilon, Tensor):
        if bool((epsilon < 0).any()):
            raise ValueError("epsilon must be >= 0")
    elif not (epsilon >= 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon must be finite and >= 0, got {epsilon}")
    if clamp is not None and not clamp[0] < clamp[1]:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp}")
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean tensor, got {mask.dtype}")


def fgsm(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    epsilon: float | Tensor,
    clamp: tuple[float, float] | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Fast gradient sign method (Goodfellow et al.): ``x + epsilon * sign(grad_x loss(x, y))``.

    Computed like ``torchattacks.FGSM`` (so that, with ``clamp=(0, 1)`` and no mask, both give the same
    adversarial inputs); runs with gradients enabled even inside ``torch.inference_mode``.

    Args:
        loss_fn: ``loss_fn(x, y) -> scalar`` to increase (e.g. cross-entropy w.r.t. the true labels).
        x: clean inputs (any shape).
        y: true labels, passed to ``loss_fn``.
        epsilon: L-inf budget, a number or a tensor broadcasting against ``x`` (e.g. one per utterance).
        clamp: optional ``(low, high)`` range the adversarial input is clamped to.
        mask: optional boolean tensor broadcasting against ``x``; elements where it is ``False`` (padding) are
            left exactly as in ``x``.

    Returns:
        The adversarial inputs, detached.
    """
    _check_attack(x, epsilon, clamp, mask)
    x0 = x.detach()
    grad = _input_gradient(loss_fn, x0, y)
    adv = x0 + epsilon * grad.sign()
    if clamp is not None:
        adv = torch.clamp(adv, min=clamp[0], max=clamp[1])
    if mask is not None:
        adv = torch.where(mask, adv, x0)
    return adv.detach()


def bim(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    epsilon: float | Tensor,
    step_size: float | Tensor,
    steps: int,
    clamp: tuple[float, float] | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Basic iterative method (Kurakin et al.): ``x_{k+1} = clip_{x, eps}(x_k + step_size * sign(grad L(x_k)))``.

    ``steps`` gradient steps from ``x_0 = x``, each followed by a projection onto the L-inf ball of radius
    ``epsilon`` around ``x`` (and onto ``clamp``), in the same order of operations as ``torchattacks.BIM``.

    Args:
        loss_fn: ``loss_fn(x, y) -> scalar`` to increase.
        x: clean inputs.
        y: true labels, passed to ``loss_fn``.
        epsilon: L-inf budget (number or broadcasting tensor).
        step_size: step ``alpha`` per iteration (number or broadcasting tensor).
        steps: number of iterations (>= 1).
        clamp: optional ``(low, high)`` range.
        mask: optional boolean tensor; elements where it is ``False`` stay exactly as in ``x``.

    Returns:
        The adversarial inputs, detached.
    """
    _check_attack(x, epsilon, clamp, mask)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x0 = x.detach()
    upper = x0 + epsilon
    lower = x0 - epsilon
    if clamp is not None:
        lower = torch.clamp(lower, min=clamp[0])
    adv = x0.clone()
    for _ in range(steps):
        grad = _input_gradient(loss_fn, adv, y)
        candidate = adv + step_size * grad.sign()
        candidate = torch.minimum(torch.maximum(candidate, lower), upper)
        if clamp is not None:
            candidate = torch.clamp(candidate, max=clamp[1])
        if mask is not None:
            candidate = torch.where(mask, candidate, x0)
        adv = candidate.detach()
    return adv


# ------------------------------------------------------------------------------------------------- helpers
def snr_tag(snr_db: float) -> str:
    """The SNR part of a metric key: ``snr0db``, ``snr10db``, ``snr-5db``, ``snr2.5db``.

    Args:
        snr_db: the SNR in dB.
    """
    value = float(snr_db)
    text = str(int(value)) if value.is_integer() else repr(value)
    return f"snr{text}db"


def category_slug(category: str) -> str:
    """A noise category as a metric-key part: lower-cased, runs of non-alphanumerics replaced by ``_``.

    ``noise`` is reserved for the mean over categories (``test_ua_noise_snr<k>db``), so a category whose slug
    would be ``noise`` (e.g. MUSAN's ``noise`` folder) becomes ``noise_category``.

    Args:
        category: a noise bank category (e.g. ``DKITCHEN``).
    """
    slug = re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_") or "unnamed"
    return "noise_category" if slug == "noise" else slug


def classification_metrics(num_classes: int, device: torch.device | str) -> MetricCollection:
    """UA (macro recall), WA (micro accuracy) and macro-F1, as the classification base computes them.

    Args:
        num_classes: number of classes.
        device: where the metric states live (the module's device, so that ``compute`` syncs under DDP).
    """
    return MetricCollection(
        {
            "ua": MulticlassRecall(num_classes, average="macro"),
            "wa": MulticlassAccuracy(num_classes, average="micro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        }
    ).to(device)


def _compute(metrics: MetricCollection) -> dict[str, float]:
    """Computes (synchronised across processes) UA, WA and F1, in that order."""
    values = metrics.compute()
    return {k: float(values[k]) for k in ("ua", "wa", "f1")}


def _describe_bank(bank: NoiseBank) -> dict[str, Any]:
    """The bank's class and its simple public settings (root, layout, seed...), for the results."""
    settings = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(bank).items()
        if not k.startswith("_") and isinstance(v, str | int | float | bool | Path | type(None))
    }
    return {"class": f"{type(bank).__module__}.{type(bank).__name__}", **settings}


def _write_table(directory: Path, stem: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Writes ``<stem>.csv`` (the rows) and ``<stem>.json`` (the summary, rows included)."""
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

    @abstractmethod
    def write(self, trainer: pl.Trainer, directory: Path, summary: dict[str, Any]) -> None:
        """Writes the tables and figures (global rank zero only)."""


# ------------------------------------------------------------------------------------------------ noise
class NoiseRobustness(TestSetRobustness):
    """Test-set UA/WA/F1 under additive noise for every (noise category, SNR), after the clean test.

    Mismatched condition (seed 000 §5.2): the model is whatever was trained; only the test inputs are noisy.
    Each utterance's noise is drawn once per category from a generator seeded by ``(seed, category, utterance
    id)`` (stable CRC32 hashes) — independent of the SNR (the same noise segment at every SNR), of batch size
    and order, of the model and of the DDP sharding — and mixed with
    :func:`ser_lightning.augment.noise.mix_at_snr` into the unpadded utterance. A silent utterance (zero power:
    its SNR is undefined) is evaluated clean and counted in ``silent_utterances``.

    Logs ``test_ua_<noise>_snr<k>db`` and ``test_wa_<noise>_snr<k>db`` for each cell (see :func:`category_slug`
    and :func:`snr_tag`), ``test_ua_noise_snr<k>db`` / ``test_wa_noise_snr<k>db`` (mean over categories, as
    seed 000's Table 2 reports per SNR). Writes ``noise_robustness.csv``/``.json`` and a UA-versus-SNR plot
    ``noise_robustness.png`` (also sent to TensorBoard / W&B) into the run directory and the table into
    ``results.json`` under ``noise_robustness``.

    Five DEMAND environments as in seed 000: ``bank=FolderNoiseBank(root=..., layout="demand")`` with
    ``categories=["DKITCHEN", "PPARK", "PSTATION", "STRAFFIC", "PCAFETER"]``.

    Args:
        bank: the noise source (default: :class:`~ser_lightning.augment.noise.ProceduralNoiseBank`: white,
            pink, brown, babble, traffic).
        categories: the noise categories evaluated (default: all of the bank's).
        snr_db: the SNRs in dB.
        seed: seed of the noise draws.
    """

    name = "noise_robustness"

    def __init__(
        self,
        bank: NoiseBank | None = None,
        categories: Sequence[str] | None = None,
        snr_db: Sequence[float] = (0.0, 10.0, 20.0),
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.bank = bank if bank is not None else ProceduralNoiseBank()
        self.categories = list(categories) if categories is not None else list(self.bank.categories)
        if not self.categories:
            raise ValueError("NoiseRobustness needs at least one noise category")
        unknown = [c for c in self.categories if c not in self.bank.categories]
        if unknown:
            raise ValueError(
                f"noise categories {unknown} are not in the {type(self.bank).__name__}; "
                f"available: {list(self.bank.categories)}"
            )
        slugs = [category_slug(c) for c in self.categories]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"noise categories {self.categories} collide as metric names {slugs}")
        self.snr_db = [float(s) for s in snr_db]
        if not self.snr_db:
            raise ValueError("NoiseRobustness needs at least one SNR")
        if not all(math.isfinite(s) for s in self.snr_db):
            raise ValueError(f"snr_db must be finite numbers, got {list(snr_db)}")
        if len(set(self.snr_db)) != len(self.snr_db):
            raise ValueError(f"snr_db has duplicates: {list(snr_db)}")
        self.seed = int(seed)

    def noise_for(self, utt_id: str, category: str, num_samples: int, sample_rate: int) -> np.ndarray:
        """The noise an utterance gets for a category (the same at every SNR, for every model and batching).

        Args:
            utt_id: the utterance id.
            category: the noise category.
            num_samples: the utterance's length in samples.
            sample_rate: its sample rate.

        Returns:
            ``num_samples`` float32 noise samples.
        """
        key = [self.seed, zlib.crc32(category.encode()), zlib.crc32(str(utt_id).encode())]
        rng = np.random.default_rng(key)
        return self.bank.sample(category, num_samples, sample_rate, rng)

    def noisy_versions(
        self, waveform: Tensor, lengths: Tensor, utt_ids: Sequence[str], category: str, sample_rate: int
    ) -> tuple[dict[float, Tensor], int]:
        """The batch mixed with one category's noise at every SNR of the grid.

        Args:
            waveform: ``[B, T]`` clean zero-padded waveforms (CPU).
            lengths: ``[B]`` valid samples.
            utt_ids: the utterances' ids.
            category: the noise category.
            sample_rate: the waveforms' sample rate.

        Returns:
            ``({snr_db: [B, T] noisy waveforms, re-padded with zeros}, number of silent utterances left clean)``.
        """
        out = {snr: waveform.clone() for snr in self.snr_db}
        silent = 0
        for row, (utt, length) in enumerate(zip(utt_ids, lengths.tolist(), strict=True)):
            speech = waveform[row, :length].numpy()
            if length == 0 or not np.any(speech):
                silent += 1
                continue
            noise = self.noise_for(utt, category, length, sample_rate)
            for snr in self.snr_db:
                try:
                    # The noise has the utterance's length, so mix_at_snr neither crops nor tiles: no draws.
                    mixed = mix_at_snr(speech, noise, snr, np.random.default_rng(0))
                except ValueError as error:
                    raise ValueError(f"cannot mix {category!r} noise into utterance {utt!r}: {error}") from error
                out[snr][row, :length] = torch.from_numpy(mixed)
        return out, silent

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[CachedBatch]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Evaluates every (category, SNR) cell over the cached batches (see :class:`TestSetRobustness`)."""
        device = pl_module.device
        rate = int(pl_module.frontend.sample_rate) if hasattr(pl_module, "frontend") else None
        if rate is None:
            datamodule = getattr(trainer, "datamodule", None)
            rate = int(getattr(datamodule, "sample_rate", 16000))
        num_classes = int(pl_module.num_classes)
        clean = classification_metrics(num_classes, device)
        cells = {(c, s): classification_metrics(num_classes, device) for c in self.categories for s in self.snr_db}
        silent = 0
        noise_seconds = model_seconds = 0.0
        for batch in batches:
            labels = batch.labels.to(device)
            clean.update(self.clean_probs(trainer, pl_module, batch), labels)
            for category in self.categories:
                started = time.perf_counter()
                versions, silent_rows = self.noisy_versions(
                    batch.waveform, batch.lengths, batch.utt_ids, category, rate
                )
                noise_seconds += time.perf_counter() - started
                silent += silent_rows
                started = time.perf_counter()
                for snr, noisy in versions.items():
                    cells[(category, snr)].update(self.predict(trainer, pl_module, noisy, batch.lengths), labels)
                model_seconds += time.perf_counter() - started
        self.seconds.update({"noise_mixing": noise_seconds, "model": model_seconds})
        # compute() synchronises across processes: every process computes the same cells in the same order.
        clean_values = _compute(clean)
        values = {key: _compute(m) for key, m in cells.items()}
        num_utterances = self.count(trainer, sum(len(b.utt_ids) for b in batches), device)
        silent_total = self.count(trainer, silent, device) // len(self.categories)
        if silent_total:
            log.warning(
                "%d silent test utterance(s) have no defined SNR and were evaluated clean in every noise condition",
                silent_total,
            )
        metrics: dict[str, float] = {}
        rows: list[dict[str, Any]] = [
            {"noise": "clean", "snr_db": None, **clean_values, "num_utterances": num_utterances}
        ]
        for category in self.categories:
            for snr in self.snr_db:
                cell = values[(category, snr)]
                tag = f"{category_slug(category)}_{snr_tag(snr)}"
                metrics[f"test_ua_{tag}"] = cell["ua"]
                metrics[f"test_wa_{tag}"] = cell["wa"]
                metrics[f"test_f1_{tag}"] = cell["f1"]
                rows.append({"noise": category, "snr_db": snr, **cell, "num_utterances": num_utterances})
        for snr in self.snr_db:
            mean = {k: float(np.mean([values[(c, snr)][k] for c in self.categories])) for k in ("ua", "wa", "f1")}
            for k, v in mean.items():
                metrics[f"test_{k}_noise_{snr_tag(snr)}"] = v
            rows.append({"noise": "mean", "snr_db": snr, **mean, "num_utterances": num_utterances})
        summary = {
            "rows": rows,
            "clean_ua": clean_values["ua"],
            "seed": self.seed,
            "bank": _describe_bank(self.bank),
            "categories": self.categories,
            "snr_db": self.snr_db,
            "num_utterances": num_utterances,
            "silent_utterances": silent_total,
            "condition": "mismatched (model as trained; noisy test inputs only)",
        }
        for snr in self.snr_db:
            log.info("noise robustness %s: mean UA %.4f", snr_tag(snr), metrics[f"test_ua_noise_{snr_tag(snr)}"])
        return metrics, summary

    def write(self, trainer: pl.Trainer, directory: Path, summary: dict[str, Any]) -> None:
        """Writes ``noise_robustness.csv/.json/.png`` and the ``noise_robustness`` entry of ``results.json``."""
        _write_table(directory, self.name, summary["rows"], summary)
        update_results(directory, {self.name: summary})
        log_figure(trainer, directory, self.name, self.figure(summary))
        log.info("noise robustness table written to %s", directory / f"{self.name}.csv")

    def figure(self, summary: dict[str, Any]) -> Any:
        """UA versus SNR: one line per noise, their mean, and the clean UA as a dashed horizontal line."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        snrs = sorted(summary["snr_db"])
        by_noise: dict[str, dict[float, float]] = {}
        for row in summary["rows"]:
            if row["snr_db"] is not None:
                by_noise.setdefault(row["noise"], {})[row["snr_db"]] = row["ua"]
        fig, ax = plt.subplots(figsize=(6.0, 4.0))
        for noise, points in by_noise.items():
            if noise == "mean":
                continue
            ax.plot(snrs, [points[s] for s in snrs], marker="o", linewidth=1.2, label=noise)
        ax.plot(snrs, [by_noise["mean"][s] for s in snrs], marker="s", color="black", linewidth=2.5, label="mean")
        ax.axhline(summary["clean_ua"], color="grey", linestyle="--", label="clean")
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel("UA (macro recall)")
        ax.set_ylim(0.0, 1.02)
        ax.set_title("Test UA under additive noise")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig


# ------------------------------------------------------------------------------------------ adversarial
class AdversarialRobustness(TestSetRobustness):
    """Test-set UA/WA/F1 under white-box FGSM and BIM attacks, after the clean test.

    ``domain="features"`` (seed 000 §5.3): the front-end's features are computed once per batch and attacked
    (only valid frames: padded frames keep the front-end's pad value), with the cross-entropy of the utterance
    posteriors w.r.t. the true labels as the loss (``nll(log(posteriors))``). ``domain="waveform"``: the raw
    waveform is attacked through the whole model (front-end included) with a per-utterance L-inf budget stated
    as a perturbation SNR, ``eps = rms(x) * 10 ** (-epsilon_snr_db / 20)``, over valid samples only.

    The model stays in eval mode; gradients are taken w.r.t. the inputs only (parameters' ``.grad`` are never
    touched), with cuDNN disabled during the attack (cuDNN RNNs refuse backward in eval mode).

    Logs ``test_ua_<attack>``, ``test_wa_<attack>``, ``test_f1_<attack>``; writes
    ``adversarial_robustness.csv``/``.json`` and the ``adversarial_robustness`` entry of ``results.json``
    (attack, domain, epsilon, steps, step size, UA/WA/F1, and the clean row for reference). In the waveform
    domain keys and files end in ``_waveform`` (``test_ua_fgsm_waveform``, ``adversarial_robustness_waveform``),
    so that both domains can be evaluated in one run.

    Args:
        attacks: the attacks to run, among ``fgsm`` and ``bim``.
        epsilon: the L-inf budget in the features domain (0.08 in seed 000).
        bim_steps: BIM iterations.
        bim_step_size: BIM step. Features domain: absolute, default ``epsilon / 4`` (torchattacks' ratio of
            2/255 to 8/255). Waveform domain: a fraction of each utterance's budget, default 0.25.
        domain: attack the ``features`` (as the paper) or the ``waveform``.
        epsilon_snr_db: the waveform-domain budget as a perturbation SNR in dB.
        clamp: optional ``(low, high)`` range the adversarial inputs are clamped to.
    """

    name = "adversarial_robustness"

    def __init__(
        self,
        attacks: Sequence[Literal["fgsm", "bim"]] = ("fgsm", "bim"),
        epsilon: float = 0.08,
        bim_steps: int = 10,
        bim_step_size: float | None = None,
        domain: Literal["features", "waveform"] = "features",
        epsilon_snr_db: float = 30.0,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.attacks = list(attacks)
        if not self.attacks or any(a not in ("fgsm", "bim") for a in self.attacks):
            raise ValueError(f"attacks must be a non-empty list of 'fgsm'/'bim', got {list(attacks)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks has duplicates: {list(attacks)}")
        if domain not in ("features", "waveform"):
            raise ValueError(f"domain must be 'features' or 'waveform', got {domain!r}")
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a positive number, got {epsilon}")
        if bim_steps < 1:
            raise ValueError(f"bim_steps must be >= 1, got {bim_steps}")
        if bim_step_size is not None and not (math.isfinite(bim_step_size) and bim_step_size > 0):
            raise ValueError(f"bim_step_size must be a positive number, got {bim_step_size}")
        if not math.isfinite(epsilon_snr_db):
            raise ValueError(f"epsilon_snr_db must be finite, got {epsilon_snr_db}")
        if clamp is not None and not (len(clamp) == 2 and clamp[0] < clamp[1]):
            raise ValueError(f"clamp must be (low, high) with low < high, got {clamp}")
        self.epsilon = float(epsilon)
        self.bim_steps = int(bim_steps)
        self.domain = domain
        self.epsilon_snr_db = float(epsilon_snr_db)
        self.clamp = (float(clamp[0]), float(clamp[1])) if clamp is not None else None
        if bim_step_size is None:
            bim_step_size = self.epsilon / 4 if domain == "features" else 0.25
        self.bim_step_size = float(bim_step_size)
        self.key_suffix = "" if domain == "features" else "_waveform"
        """Metric-key suffix: none in the features domain, ``_waveform`` in the waveform domain."""
        self.name = f"adversarial_robustness{self.key_suffix}"

    def check_module(self, pl_module: pl.LightningModule) -> None:
        """Also needs ``frontend`` and ``utterance_posteriors`` in the features domain."""
        super().check_module(pl_module)
        if self.domain == "features" and not (
            hasattr(pl_module, "frontend") and hasattr(pl_module, "utterance_posteriors")
        ):
            raise TypeError(
                f"the features-domain attack needs `frontend` and `utterance_posteriors` on the module "
                f"(a SERClassificationTask); {type(pl_module).__name__} has not; use domain='waveform'"
            )

    def attack_inputs(
        self, trainer: pl.Trainer | None, pl_module: pl.LightningModule, batch: CachedBatch
    ) -> tuple[Tensor, LossFn, Callable[[Tensor], Tensor], Tensor, Tensor | float]:
        """The inputs of one batch's attack in the chosen domain, as normal (non-inference) tensors.

        Args:
            trainer: the trainer (its precision context), or ``None``.
            pl_module: the attacked classifier.
            batch: a cached clean batch.

        Returns:
            ``(x, loss_fn, posteriors_fn, mask, epsilon)``: the clean inputs (features ``[B, 1, F, N]`` or
            waveforms ``[B, T]``), ``loss_fn(x, y)``, the posteriors of an input, the boolean mask of valid
            frames/samples and the budget (a number, or ``[B, 1]`` per utterance in the waveform domain).
        """
        device = pl_module.device
        with torch.inference_mode(False):
            waveform = batch.waveform.to(device).clone()
            lengths = batch.lengths.to(device).clone()
            if self.domain == "features":
                with torch.no_grad(), self.model_context(trainer):
                    features, frames = pl_module.frontend(waveform, lengths)
                features, frames = features.detach().clone(), frames.detach().clone()
                steps = torch.arange(features.shape[-1], device=device)
                mask = (steps[None, :] < frames[:, None])[:, None, None, :]

                def posteriors(x: Tensor) -> Tensor:
                    return pl_module.utterance_posteriors(x, frames)

                epsilon: Tensor | float = self.epsilon
                x = features
            else:
                mask = torch.arange(waveform.shape[1], device=device)[None, :] < lengths[:, None]
                power = (waveform.double() ** 2 * mask).sum(dim=1) / lengths.clamp(min=1)
                epsilon = (power.sqrt() * 10.0 ** (-self.epsilon_snr_db / 20.0)).float()[:, None]

                def posteriors(x: Tensor) -> Tensor:
                    return pl_module(x, lengths)

                x = waveform

        def loss_fn(x: Tensor, y: Tensor) -> Tensor:
            return nn.functional.cross_entropy(torch.log(posteriors(x).float().clamp_min(1e-12)), y)

        return x, loss_fn, posteriors, mask, epsilon

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[CachedBatch]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Attacks every cached batch with each attack (see :class:`TestSetRobustness`)."""
        device = pl_module.device
        num_classes = int(pl_module.num_classes)
        clean = classification_metrics(num_classes, device)
        results = {a: classification_metrics(num_classes, device) for a in self.attacks}
        seconds = dict.fromkeys(self.attacks, 0.0)
        for batch in batches:
            clean.update(self.clean_probs(trainer, pl_module, batch), batch.labels.to(device))
            x, loss_fn, posteriors, mask, epsilon = self.attack_inputs(trainer, pl_module, batch)
            with torch.inference_mode(False):
                labels = batch.labels.to(device).clone()
            for attack in self.attacks:
                started = time.perf_counter()
                with torch.backends.cudnn.flags(enabled=False), self.model_context(trainer):
                    if attack == "fgsm":
                        adv = fgsm(loss_fn, x, labels, epsilon, self.clamp, mask)
                    else:
                        step = self.bim_step_size if self.domain == "features" else epsilon * self.bim_step_size
                        adv = bim(loss_fn, x, labels, epsilon, step, self.bim_steps, self.clamp, mask)
                with torch.no_grad(), self.model_context(trainer):
                    probs = posteriors(adv).float()
                results[attack].update(probs, labels)
                seconds[attack] += time.perf_counter() - started
        self.seconds.update(seconds)
        clean_values = _compute(clean)
        values = {a: _compute(m) for a, m in results.items()}
        num_utterances = self.count(trainer, sum(len(b.utt_ids) for b in batches), device)
        metrics: dict[str, float] = {}
        features = self.domain == "features"
        rows: list[dict[str, Any]] = [
            {
                "attack": "none",
                "domain": self.domain,
                "epsilon": None,
                "epsilon_snr_db": None,
                "steps": 0,
                "step_size": None,
                **clean_values,
                "num_utterances": num_utterances,
            }
        ]
        for attack in self.attacks:
            for k, v in values[attack].items():
                metrics[f"test_{k}_{attack}{self.key_suffix}"] = v
            rows.append(
                {
                    "attack": attack,
                    "domain": self.domain,
                    "epsilon": self.epsilon if features else None,
                    "epsilon_snr_db": None if features else self.epsilon_snr_db,
                    "steps": 1 if attack == "fgsm" else self.bim_steps,
                    "step_size": (self.epsilon if features else 1.0) if attack == "fgsm" else self.bim_step_size,
                    **values[attack],
                    "num_utterances": num_utterances,
                }
            )
            log.info("adversarial robustness %s (%s): UA %.4f", attack, self.domain, values[attack]["ua"])
        summary = {
            "rows": rows,
            "clean_ua": clean_values["ua"],
            "domain": self.domain,
            "epsilon": self.epsilon if features else None,
            "epsilon_snr_db": None if features else self.epsilon_snr_db,
            "step_size_unit": "absolute" if features else "fraction of each utterance's epsilon",
            "bim_steps": self.bim_steps,
            "bim_step_size": self.bim_step_size,
            "clamp": list(self.clamp) if self.clamp else None,
            "loss": "cross-entropy of the utterance posteriors w.r.t. the true labels",
            "num_utterances": num_utterances,
        }
        return metrics, summary

    def write(self, trainer: pl.Trainer, directory: Path, summary: dict[str, Any]) -> None:
        """Writes ``adversarial_robustness.csv/.json`` and the ``adversarial_robustness`` entry of results."""
        _write_table(directory, self.name, summary["rows"], summary)
        update_results(directory, {self.name: summary})
        log.info("adversarial robustness table written to %s", directory / f"{self.name}.csv")
