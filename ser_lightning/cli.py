"""The command line: ``python -m ser_lightning {fit,validate,test,predict} --config ...``.

``export``, ``timeline`` and ``infer`` (a trained model outside training) are handed to
:mod:`ser_lightning.inference.__main__`.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

# Importing the subpackages registers their classes, so YAML can say `class_path: DenseHighway`.
import ser_lightning.callbacks
import ser_lightning.data
import ser_lightning.models
from ser_lightning.callbacks.rng import RandomStateCheckpoint
from ser_lightning.data.base import SERDataModule
from ser_lightning.inference import __main__ as inference_cli
from ser_lightning.models.base import SERTask
from ser_lightning.results import stop_reason

log = logging.getLogger("ser_lightning")

INFERENCE_COMMANDS = ("export", "timeline", "infer")
"""Subcommands served by :mod:`ser_lightning.inference.__main__` instead of LightningCLI."""


class SERLightningCLI(LightningCLI):
    """LightningCLI with the DataModule as the single source of the class set.

    ``data.num_classes``, ``data.class_names`` and ``data.sample_rate`` are linked into the model (and, for a
    regression corpus, ``data.num_targets`` and ``data.target_names``), so no model YAML repeats them (a value
    written in a model YAML would be overridden by the link).
    A rich progress bar is added unless ``--trainer.enable_progress_bar false``.
    ``fit`` ends, by default, with a ``test`` of the best checkpoint (``--test_after_fit false`` skips it).
    ``--evaluation`` is a list of callbacks kept apart from ``trainer.callbacks`` so that a suite such as
    ``configs/robustness.yaml`` composes with any model config without replacing its callbacks.
    A :class:`~ser_lightning.callbacks.rng.RandomStateCheckpoint` is added to every run, and ``fit --ckpt_path
    <run>/checkpoints/last.ckpt`` (or ``fit --resume <run>``) continues in the checkpoint's run folder, so a
    resumed run is exactly the uninterrupted one (docs/resume.md).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Links the class set from the data into the model and adds ``--test_after_fit``."""
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        parser.link_arguments("data.sample_rate", "model.init_args.sample_rate", apply_on="instantiate")
        # A link whose source the DataModule does not have is skipped: a classification corpus has no
        # num_targets/target_names, a regression corpus (continuous targets) no num_classes/class_names.
        parser.link_arguments("data.num_targets", "model.init_args.num_targets", apply_on="instantiate")
        parser.link_arguments("data.target_names", "model.init_args.target_names", apply_on="instantiate")
        parser.add_argument(
            "--evaluation",
            type=list[Callback] | None,
            default=None,
            help="evaluation callbacks added to the trainer's callbacks (e.g. the robustness suite of "
            "configs/robustness.yaml: NoiseRobustness, AdversarialRobustness, CrossCorpusEvaluation); they run "
            "after every test, including fit's final test",
        )
        parser.add_argument(
            "--resume",
            type=str | None,
            default=None,
            help="fit only: resume a killed or interrupted run, given its run folder (runs/<name>/version_N, "
            "whose checkpoints/last.ckpt is used) or a checkpoint; the same as --ckpt_path <run>/checkpoints/"
            "last.ckpt. The run continues in its own folder and ends as the uninterrupted run would (docs/resume.md)",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="fit only: test the best checkpoint on the held-out test split when training ends",
        )
        parser.add_argument(
            "--experiment_cell",
            type=str | None,
            default=None,
            help="set by the experiment runner: <experiment>/<variant>/fold<k>-seed<s>. The run folder is "
            "--trainer.default_root_dir; TensorBoard/CSV loggers write into it, and a W&B run is named after the "
            "cell, grouped by experiment (group) and variant (job_type), with an id unique to the cell",
        )

    def before_instantiate_classes(self) -> None:
        """Points the loggers at an experiment cell's folder and turns ``fit --resume`` into ``--ckpt_path``."""
        if self.subcommand != "fit":
            return
        config = self.config[self.subcommand]
        cell = config.get("experiment_cell")
        if cell:
            trainer = config["trainer"]
            trainer["logger"] = cell_loggers(trainer.get("logger"), cell, Path(trainer["default_root_dir"]))
        resume = config.get("resume")
        if not resume:
            return
        path = Path(resume)
        ckpt = path / "checkpoints" / "last.ckpt" if path.is_dir() else path
        if not ckpt.is_file():
            raise FileNotFoundError(f"--resume {resume}: no checkpoint {ckpt}")
        given = config.get("ckpt_path")
        if given and Path(given).resolve() != ckpt.resolve():
            raise ValueError(f"--resume {resume} and --ckpt_path {given} name different checkpoints")
        config["ckpt_path"] = str(ckpt)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Adds the ``--evaluation`` callbacks, random-state checkpointing and a rich progress bar (unless disabled).

        A resumed ``fit`` continues in its checkpoint's run folder (:func:`continue_run_folder`).
        """
        evaluation = self._get(self.config_init, "evaluation", default=None) or []
        callbacks = [*callbacks, *evaluation]
        configured = config.get("callbacks") or []
        if not any(isinstance(c, RandomStateCheckpoint) for c in [*configured, *callbacks]):
            callbacks = [RandomStateCheckpoint(), *callbacks]
        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in [*configured, *callbacks]
        ):
            callbacks = [*callbacks, RichProgressBar()]
        trainer = super()._instantiate_trainer(config, callbacks)
        ckpt_path = self._get(self.config, "ckpt_path", default=None) if self.subcommand == "fit" else None
        if ckpt_path and Path(ckpt_path).is_file():
            continue_run_folder(trainer, Path(ckpt_path))
        return trainer

    def after_fit(self) -> None:
        """Tests the best checkpoint (or the last weights when no checkpoint was kept)."""
        if self.trainer.interrupted:
            if isinstance(self.model, SERTask):  # on_train_end does not run on an interruption
                self.model.training_stop = stop_reason(self.trainer)
                self.model.write_training_stop()
            log.warning("training was interrupted: skipping the final test")
            return
        if not self.config_init[self.subcommand].get("test_after_fit", True):
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        ckpt_path = "best" if best else None
        if ckpt_path is None:
            log.info("no best checkpoint was saved: testing the weights as they are")
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)


_FOLDER_LOGGERS = ("TensorBoardLogger", "CSVLogger")


def cell_loggers(logger: Any, cell: str, directory: Path) -> Any:
    """The logger configuration of an experiment cell.

    TensorBoard and CSV loggers write into the cell's folder (``save_dir/name/version`` =
    ``<experiment folder>/<variant>/<cell>``). A W&B logger's run is named ``<experiment>/<variant>/<cell>``,
    grouped by experiment (``group``) and variant (``job_type``), keeps its files in the cell's folder, and gets an id
    unique to the cell (experiment, variant, cell and a hash of the experiment folder), so an interrupted cell
    resumes its own W&B run and no two cells share one. A TensorBoard logger is added when none is configured, so
    every cell has its TensorBoard folder; ``logger: false`` stays off.

    Args:
        logger: the parsed ``trainer.logger`` (a class config, a list of them, ``True``/``None`` for the default, or
            ``False``).
        cell: ``<experiment>/<variant>/fold<k>-seed<s>``.
        directory: the cell's folder (``trainer.default_root_dir``).

    Returns:
        The rewritten ``trainer.logger`` (a list of class configs, or ``False``).
    """
    from jsonargparse import Namespace

    parts = cell.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"--experiment_cell {cell!r}: expected <experiment>/<variant>/fold<k>-seed<s>")
    experiment, variant, version = parts
    if logger is False:
        return False
    directory = directory.resolve()
    if (directory.parent.name, directory.name) != (variant, version):
        raise ValueError(f"--experiment_cell {cell!r} does not match the run folder {directory}")
    configs = [c.clone() for c in (logger if isinstance(logger, list) else [logger]) if isinstance(c, Namespace)]
    if not any(c.class_path.rsplit(".", 1)[-1] in _FOLDER_LOGGERS for c in configs):
        configs.append(Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger", init_args=Namespace()))
    digest = hashlib.sha1(str(directory.parent.parent).encode()).hexdigest()[:8]
    for config in configs:
        args = config.get("init_args") or Namespace()
        kind = config.class_path.rsplit(".", 1)[-1]
        if kind in _FOLDER_LOGGERS:
            values = {"save_dir": str(directory.parent.parent), "name": variant, "version": version}
        elif kind == "WandbLogger":
            run_id = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{experiment}-{variant}-{version}")[:55] + f"-{digest}"
            values = {"save_dir": str(directory), "name": cell, "version": run_id, "id": None}
            values |= {"group": experiment, "job_type": variant}
        else:
            values = {}
        for key, value in values.items():
            args[key] = value
        config["init_args"] = args
    return configs


def continue_run_folder(trainer: Trainer, ckpt_path: Path) -> None:
    """Points the trainer's TensorBoard/CSV loggers at the run folder of a checkpoint that is resumed.

    A checkpoint in ``<save_dir>/<name>/<version>/checkpoints/`` names its run folder; a logger whose version is
    not set would otherwise start ``version_<N+1>``, and ``ModelCheckpoint`` (whose directory follows the first
    logger) would then neither restore its best checkpoints nor find their files. A CSV logger keeps the rows
    the interrupted run had written up to the checkpoint's epoch (Lightning's CSV writer deletes an existing
    ``metrics.csv``); rows of the epoch that was cut short are dropped, as the resumed run repeats it.

    Args:
        trainer: the freshly built trainer (before ``fit``).
        ckpt_path: the checkpoint being resumed.
    """
    ckpt_path = ckpt_path.resolve()
    if ckpt_path.parent.name != "checkpoints":
        log.info("resuming %s, which is not in a run's checkpoints/ folder: logging to a new run folder", ckpt_path)
        return
    run = ckpt_path.parent.parent
    folder = run.name
    version: int | str = int(folder[len("version_") :]) if re.fullmatch(r"version_\d+", folder) else folder
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger | CSVLogger) or logger._version is not None:
            continue
        if Path(logger.root_dir).resolve() != run.parent:
            log.warning("resuming %s: the logger writes under %s, not into the checkpoint's run folder %s",
                        ckpt_path, logger.root_dir, run)  # fmt: skip
            continue
        logger._version = version  # what the logger's `version` argument sets
        if isinstance(logger, CSVLogger) and rank_zero_only.rank == 0:
            _keep_csv_rows(logger, *_checkpoint_progress(ckpt_path))
    log.info("resuming %s in its run folder %s", ckpt_path.name, run)


def _checkpoint_progress(ckpt_path: Path) -> tuple[int, int]:
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    return int(checkpoint.get("epoch", 0)), int(checkpoint.get("global_step", 0))


def _keep_csv_rows(logger: CSVLogger, last_epoch: int, global_step: int) -> None:
    """Re-writes the rows of an existing ``metrics.csv`` logged before the checkpoint once the logger's writer starts.

    Kept: rows of epochs up to ``last_epoch``, and rows without an epoch (e.g. the learning rate) logged before
    step ``global_step``.
    """
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        logger.experiment  # noqa: B018 -- start the writer here as well, for one behaviour either way
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        keys = list(reader.fieldnames or [])
        rows = [r for r in reader if _before_checkpoint(r, last_epoch, global_step)]
    writer = logger.experiment  # creating it deletes metrics.csv
    with path.open("w", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=keys)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = keys


def _before_checkpoint(row: dict[str, str], last_epoch: int, global_step: int) -> bool:
    if row.get("epoch"):
        return int(float(row["epoch"])) <= last_epoch
    return int(float(row.get("step") or 0)) < global_step


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m ser_lightning" if name in ("", "__main__.py", "-c") else name


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    if not log.handlers:
        log.addHandler(handler)
    log.setLevel(os.environ.get("SER_LIGHTNING_LOG_LEVEL", "INFO"))
    log.propagate = False


def main(args: list[str] | None = None) -> Any:
    """Runs the CLI.

    Args:
        args: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The CLI object (an exit status for the inference commands, :data:`INFERENCE_COMMANDS`).
    """
    _configure_logging()
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in INFERENCE_COMMANDS:
        return inference_cli.main(argv, prog=_prog())
    # W&B must never block on a login prompt: without credentials it runs offline.
    if "WANDB_API_KEY" not in os.environ and "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
    return SERLightningCLI(
        SERTask,  # SERClassificationTask or SERRegressionTask subclasses
        SERDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"version": ser_lightning.__version__, "prog": _prog()},
        args=args,
    )


if __name__ == "__main__":
    main()
