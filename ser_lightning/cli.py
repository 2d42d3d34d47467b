"""The command line: ``python -m ser_lightning {fit,validate,test,predict} --config ...``."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

# Importing the subpackages registers their classes, so YAML can say `class_path: DenseHighway`.
import ser_lightning.callbacks
import ser_lightning.data
import ser_lightning.models
from ser_lightning.data.base import SERDataModule
from ser_lightning.models.base import SERTask
from ser_lightning.results import stop_reason

log = logging.getLogger("ser_lightning")


class SERLightningCLI(LightningCLI):
    """LightningCLI with the DataModule as the single source of the class set.

    ``data.num_classes``, ``data.class_names`` and ``data.sample_rate`` are linked into the model (and, for a
    regression corpus, ``data.num_targets`` and ``data.target_names``), so no model YAML repeats them (a value
    written in a model YAML would be overridden by the link).
    A rich progress bar is added unless ``--trainer.enable_progress_bar false``.
    ``fit`` ends, by default, with a ``test`` of the best checkpoint (``--test_after_fit false`` skips it).
    ``--evaluation`` is a list of callbacks kept apart from ``trainer.callbacks`` so that a suite such as
    ``configs/robustness.yaml`` composes with any model config without replacing its callbacks.
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
            "--test_after_fit",
            type=bool,
            default=True,
            help="fit only: test the best checkpoint on the held-out test split when training ends",
        )

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Adds the ``--evaluation`` callbacks, and a rich progress bar unless disabled or configured already."""
        evaluation = self._get(self.config_init, "evaluation", default=None) or []
        callbacks = [*callbacks, *evaluation]
        configured = config.get("callbacks") or []
        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in [*configured, *callbacks]
        ):
            callbacks = [*callbacks, RichProgressBar()]
        return super()._instantiate_trainer(config, callbacks)

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
        The CLI object.
    """
    _configure_logging()
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
