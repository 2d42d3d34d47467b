"""The task base every model inherits: front-end and network hooks, optimizer wiring, checkpoints, results.

:class:`SERTask` holds what classification (:class:`~ser_lightning.models.classification.SERClassificationTask`)
and regression (:class:`~ser_lightning.models.regression.SERRegressionTask`) have in common. Its constructor
saves every argument of the whole class chain as hyperparameters and then calls the ``configure_*`` hooks, in
this order: :meth:`~SERTask.configure_task` (the task reads its own arguments), :meth:`~SERTask.configure_frontend`,
:meth:`~SERTask.configure_network`, :meth:`~SERTask.configure_losses`, :meth:`~SERTask.configure_metrics`.

A subclass declares only the arguments it adds and forwards the rest with ``**kwargs``: LightningCLI (through
jsonargparse) follows ``**kwargs`` into the parent's signature, so ``--help`` lists every inherited argument
and a misspelt one is rejected.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import logging
import sys
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ser_lightning.models.frontends import FrontEnd
from ser_lightning.models.frontends_enhancement import EnhancedFrontEnd, enhance_frontend
from ser_lightning.results import run_dir, stop_reason, update_results

log = logging.getLogger(__name__)

_EMBEDDED_ENHANCER: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("enhancer", default=None)
"""The enhancement stage stored in the SER checkpoint being loaded (so its enhancer file is not needed)."""


class HalveLROnPlateau(ReduceLROnPlateau):
    """Halves the learning rate when the monitored metric (validation UA) has not improved for 5 epochs.

    The schedule of Latif et al. 2020 (§4.4); every argument can be overridden from the CLI.

    Args:
        optimizer: the optimizer.
        mode: ``max`` for accuracies.
        factor: multiplicative decay.
        patience: epochs without improvement before decaying.
        min_lr: lower bound of the learning rate.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: str = "max",
        factor: float = 0.5,
        patience: int = 5,
        min_lr: float = 1e-6,
    ) -> None:
        super().__init__(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)


class SERTask(pl.LightningModule, ABC):
    """Base LightningModule of every emotion model: waveforms in, the model's own front-end, a pure network.

    The model owns its feature front-end (so a checkpoint is self-contained): waveforms go in, features are
    computed on the model's device.

    Subclasses implement :meth:`configure_frontend` and :meth:`configure_network`, reading their constructor
    arguments from ``self.hparams`` (saved before the hooks run); :meth:`build_network` passes a network class
    every hyperparameter its constructor names, so an architecture states each argument once.

    Args:
        optimizer: optimizer factory (default Adam, learning rate 1e-3 — Latif et al. 2020 §4.4).
        lr_scheduler: scheduler factory (default: halve the learning rate when the monitored validation metric
            has not improved for 5 epochs).
        sample_rate: sample rate of the input audio (linked from the DataModule by the CLI); default: the
            architecture's (:attr:`default_sample_rate`).
        enhancer: a trained :class:`~ser_lightning.models.enhancement.SpeechEnhancer` checkpoint to put, frozen,
            in front of the feature front-end (Triantafyllopoulos et al. 2019; ``configs/frontend/enhancer.yaml``,
            :mod:`ser_lightning.models.frontends_enhancement`); its weights are stored in this model's checkpoint.
    """

    monitor: ClassVar[str] = "val_loss"
    """The validation metric that the scheduler, checkpointing and early stopping follow."""
    default_sample_rate: ClassVar[int] = 16000
    """The sample rate of the architecture's paper, used when ``sample_rate`` is not given."""

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable = HalveLROnPlateau,
        sample_rate: int | None = None,
        enhancer: str | None = None,
    ) -> None:
        super().__init__()
        if sample_rate is not None and sample_rate < 1000:
            raise ValueError(f"sample_rate {sample_rate} Hz is implausibly low")
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        defaults = {k: v for k, v in self.architecture_defaults().items() if self.hparams.get(k) is None}
        if defaults:  # resolved values in hparams (and hparams_initial, which loggers compare with the data's)
            self.save_hyperparameters({**self.hparams, **defaults})
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self._test_started = self._test_finished = 0.0
        self.configure_task()
        self.frontend = self.configure_enhancement(self.configure_frontend())
        self.network = self.configure_network()
        self.configure_losses()
        self.configure_metrics()

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> SERTask:  # type: ignore[override]
        """Loads a checkpoint; called on an abstract base it rebuilds the architecture the checkpoint names.

        ``SERClassificationTask.load_from_checkpoint(path)`` returns e.g. a ``DenseHighway`` with the
        checkpoint's class set. The named class must be a subclass of the class this is called on, defined in
        ``ser_lightning`` or already imported.

        Args:
            checkpoint_path: path (or file-like object) of the checkpoint.
            *args: passed on to :meth:`lightning.pytorch.LightningModule.load_from_checkpoint`.
            **kwargs: passed on likewise (``map_location``, ``strict``, overriding hyperparameters...).
        """
        if inspect.isabstract(cls):
            hparams = torch.load(checkpoint_path, map_location="cpu", weights_only=True).get("hyper_parameters", {})
            class_path = hparams.get("_class_path")
            if not class_path:
                raise ValueError(
                    f"{checkpoint_path}: the checkpoint does not name its model class; load it with the "
                    "architecture's own class, e.g. DenseHighway.load_from_checkpoint(path)"
                )
            module_name, _, name = class_path.rpartition(".")
            if module_name.split(".")[0] == "ser_lightning":
                importlib.import_module(module_name)
            target = getattr(sys.modules.get(module_name), name, None)
            if not (isinstance(target, type) and issubclass(target, cls)):
                raise ValueError(f"{checkpoint_path}: {class_path!r} is not an imported subclass of {cls.__name__}")
            if hasattr(checkpoint_path, "seek"):
                checkpoint_path.seek(0)
            return target.load_from_checkpoint(checkpoint_path, *args, **kwargs)
        stage = torch.load(checkpoint_path, map_location="cpu", weights_only=True).get("enhancer_stage")
        if hasattr(checkpoint_path, "seek"):
            checkpoint_path.seek(0)
        token = _EMBEDDED_ENHANCER.set(stage)
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        finally:
            _EMBEDDED_ENHANCER.reset(token)

    # ------------------------------------------------------------------------------------------ hooks
    def architecture_defaults(self) -> dict[str, Any]:
        """Values that arguments left at ``None`` take from the architecture (e.g. its paper's sample rate)."""
        return {"sample_rate": self.default_sample_rate}

    def configure_task(self) -> None:
        """Reads the task's own arguments from ``self.hparams`` into attributes (before the other hooks)."""

    @abstractmethod
    def configure_frontend(self) -> FrontEnd:
        """Builds the feature front-end."""

    @abstractmethod
    def configure_network(self) -> nn.Module:
        """Builds the pure network."""

    def configure_enhancement(self, frontend: FrontEnd) -> FrontEnd:
        """Puts the frozen enhancer of ``enhancer`` (if given) in front of ``frontend``."""
        path = self.hparams.get("enhancer")
        if not path:
            return frontend
        stage = enhance_frontend(frontend, path, _EMBEDDED_ENHANCER.get())
        log.info("frozen enhancement stage %s (sha256 %s) in front of %s", stage.stage_config["checkpoint"],
                 stage.stage_config["sha256"][:12], type(frontend).__name__)  # fmt: skip
        return stage

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Stores the enhancement stage's configuration, so the checkpoint loads without the enhancer's file."""
        if isinstance(self.frontend, EnhancedFrontEnd):
            checkpoint["enhancer_stage"] = dict(self.frontend.stage_config)

    def configure_losses(self) -> None:
        """Sets ``self.criterion``."""

    def configure_metrics(self) -> None:
        """Creates the metric objects of each stage."""

    def configure_optimizers(self) -> dict[str, Any]:
        """The injected optimizer, and the scheduler monitoring :attr:`monitor` once per epoch."""
        optimizer = self.optimizer_factory(self.parameters())
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            # strict=False: runs without validation (limit_val_batches=0) warn instead of failing.
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch", "strict": False},
        }

    # -------------------------------------------------------------------------------------- helpers
    def build_network(self, network: type[nn.Module], **fixed: Any) -> nn.Module:
        """Instantiates ``network`` with every hyperparameter its constructor names, and ``fixed`` on top.

        Lists (as YAML stores sequences) are passed as tuples when the constructor's default is a tuple.

        Args:
            network: the pure network class.
            **fixed: arguments the task computes (e.g. ``n_freq`` from the front-end); they win over hparams.

        Returns:
            The network.
        """
        params = inspect.signature(network).parameters
        kwargs: dict[str, Any] = {}
        for name, param in params.items():
            if name in fixed or name not in self.hparams:
                continue
            value = self.hparams[name]
            if isinstance(param.default, tuple) and isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return network(**kwargs, **fixed)

    def on_fit_start(self) -> None:
        """Starts the clock of ``fit`` (``training_stop.fit_seconds``: from here to the end of training)."""
        self._fit_started = time.perf_counter()

    def on_train_end(self) -> None:
        """Logs why training stopped and records it as ``training_stop`` in ``results.json``.

        ``training_stop`` also holds ``fit_seconds``, the wall time from the start of ``fit`` (after the data's setup)
        to the end of training, which the experiment benchmark compares with each cell's process time.
        """
        self.training_stop = stop_reason(self.trainer)
        started = getattr(self, "_fit_started", None)
        if started is not None:
            self.training_stop["fit_seconds"] = round(time.perf_counter() - started, 3)
        log.info("training stopped: %s", self.training_stop["detail"])
        self.write_training_stop()

    def write_training_stop(self) -> None:
        """Writes :attr:`training_stop` into the run's ``results.json`` (a collective under DDP)."""
        if self.trainer.fast_dev_run or getattr(self, "training_stop", None) is None:
            return
        directory = run_dir(self.trainer)
        if self.trainer.is_global_zero:
            update_results(directory, {"training_stop": self.training_stop})

    def on_test_epoch_start(self) -> None:
        """Starts the clock of the test pass."""
        self._test_started = time.perf_counter()
        self._test_finished = 0.0

    def write_test_results(self, results: dict[str, Any]) -> str | None:
        """Writes the test results, stamped with the DataModule's description, into ``results.json``.

        A collective under DDP (every process must call it); only global rank 0 writes. Nothing is written for
        sanity checks and ``fast_dev_run``.

        Args:
            results: the task's figures (``test_*`` metrics and counts).

        Returns:
            The path of ``results.json``, or ``None`` where nothing was written.
        """
        if self.trainer.sanity_checking or self.trainer.fast_dev_run:
            return None
        directory = run_dir(self.trainer)  # a collective under DDP: every process calls it
        if not self.trainer.is_global_zero:
            return None
        finished = self._test_finished or time.perf_counter()
        results = {
            "model": type(self).__name__,
            **results,
            **({"training_stop": self.training_stop} if getattr(self, "training_stop", None) else {}),
            "test_seconds": round(max(finished - self._test_started, 0.0), 3),
            "checkpoint": getattr(self.trainer, "ckpt_path", None),
        }
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "describe") and getattr(datamodule, "split", None):
            results = {**datamodule.describe(), "seed": getattr(datamodule, "seed", None), **results}
        return str(update_results(directory, results))
