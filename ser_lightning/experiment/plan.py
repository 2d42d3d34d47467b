"""The plan of an experiment: one cell per (fold, seed, variant), each an ordinary ``fit`` run in its own folder.

A cell's folder is ``<output_root>/<experiment>/<variant>/fold<k>-seed<s>/`` (``--trainer.default_root_dir``;
``--experiment_cell`` makes it the TensorBoard/CSV loggers' ``save_dir/name/version`` and names, groups and
identifies a W&B run after the cell: see :func:`ser_lightning.cli.cell_loggers`), so the run's ``config.yaml``,
``hparams.yaml``, checkpoints, ``results.json`` and
TensorBoard/CSV logs all land there, next to the executor's ``cell.json`` and ``cell.log``.
"""

from __future__ import annotations

import logging
import shlex
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ser_lightning.experiment.spec import ExperimentSpec

__all__ = ["Cell", "Plan", "make_plan", "resolve_folds"]

log = logging.getLogger(__name__)

LAST_CKPT = Path("checkpoints") / "last.ckpt"


@dataclass(frozen=True)
class Cell:
    """One run of an experiment.

    Args:
        variant: the variant's name.
        fold: the protocol's fold.
        seed: ``seed_everything``.
        directory: the run folder (absolute).
        args: the arguments of ``python -m ser_lightning`` (starting with ``fit``), without any ``--ckpt_path``.
    """

    variant: str
    fold: int
    seed: int
    directory: Path
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        """``<variant>/fold<k>-seed<s>``."""
        return f"{self.variant}/{self.id}"

    @property
    def id(self) -> str:
        """``fold<k>-seed<s>`` (the logger's version)."""
        return f"fold{self.fold}-seed{self.seed}"

    def command(self, resume: bool = False) -> list[str]:
        """The command line of the cell.

        Args:
            resume: continue from ``<cell>/checkpoints/last.ckpt``.
        """
        extra = ["--ckpt_path", str(self.directory / LAST_CKPT)] if resume else []
        return [sys.executable, "-m", "ser_lightning", *self.args, *extra]

    def shell(self, resume: bool = False) -> str:
        """The command as one shell-quoted line."""
        return shlex.join(self.command(resume))


@dataclass
class Plan:
    """The cells of an experiment, in run order (fold, then seed, then variant: pairs complete early).

    Args:
        spec: the experiment spec.
        folds: the resolved folds.
        cells: every cell.
        fold_source: how the folds were chosen (listed in the spec, or counted from the protocol).
    """

    spec: ExperimentSpec
    folds: list[int]
    cells: list[Cell]
    fold_source: str = ""

    @property
    def directory(self) -> Path:
        """The experiment folder (absolute)."""
        return self.spec.directory.resolve()

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (``experiment.json``)."""
        return {
            "spec": self.spec.to_dict(),
            "folds": self.folds,
            "fold_source": self.fold_source,
            "cells": [
                {
                    "name": c.name,
                    "variant": c.variant,
                    "fold": c.fold,
                    "seed": c.seed,
                    "directory": str(c.directory),
                    "command": c.shell(),
                }
                for c in self.cells
            ],
        }

    def select(self, variants: list[str] | None = None) -> list[int]:
        """The plan indices of the cells of some variants (every cell when ``variants`` is ``None``).

        ``run --variants`` runs a part of an experiment (the SVM rows on a CPU, the deep rows on a GPU, one new
        variant): the plan, its folders and ``experiment.json`` stay the whole experiment's, so a SLURM task id is
        still the cell's index and the card lists the cells not run yet as pending.

        Args:
            variants: variant names of the spec.

        Raises:
            ValueError: a name that is not a variant of the spec.
        """
        if variants is None:
            return list(range(len(self.cells)))
        unknown = [name for name in variants if name not in self.spec.variants]
        if unknown or not variants:
            raise ValueError(
                f"experiment {self.spec.name}: no variant(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"its variants are {', '.join(self.spec.variants)}"
            )
        chosen = set(variants)
        return [i for i, cell in enumerate(self.cells) if cell.variant in chosen]

    def describe(self, indices: list[int] | None = None) -> str:
        """A human-readable listing of the cells and their commands (``--dry-run``).

        Args:
            indices: the cells to list (default: all; see :meth:`select`).
        """
        spec = self.spec
        lines = [
            f"experiment {spec.name}: {len(self.cells)} cells = {len(spec.variants)} variant(s) "
            f"({', '.join(spec.variants)}) x {len(self.folds)} fold(s) {self.folds} ({self.fold_source}) x "
            f"{len(spec.seeds)} seed(s) {spec.seeds}",
            f"folder: {self.directory}",
        ]
        chosen = self.select() if indices is None else indices
        if len(chosen) < len(self.cells):
            lines.append(f"selected: {len(chosen)} of the {len(self.cells)} cells")
        for cell in (self.cells[i] for i in chosen):
            lines += [f"[{cell.name}] {cell.directory}", f"  {cell.shell()}"]
        return "\n".join(lines)


def _data_instance(config_args: list[str]) -> Any:
    """Instantiates only the DataModule of a run config (no model, no trainer)."""
    from jsonargparse import ArgumentParser

    from ser_lightning.cli import SERLightningCLI
    from ser_lightning.data.base import SERDataModule
    from ser_lightning.models.base import SERTask

    class _ParseOnly(SERLightningCLI):
        def _set_seed(self) -> None:  # parsing only: leave this process' random state alone
            return None

        def instantiate_classes(self) -> None:
            return None

    with warnings.catch_warnings():  # "args and sys.argv both given": the experiment's own argv is not the run's
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = _ParseOnly(
            SERTask,
            SERDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            seed_everything_default=0,
            auto_configure_optimizers=False,
            args=config_args,
        )
    parser = ArgumentParser()
    parser.add_subclass_arguments(SERDataModule, "data")
    data = cli.config["data"]
    config = parser.parse_object({"data": data.as_dict() if hasattr(data, "as_dict") else data})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    return instantiate(config)["data"]


def resolve_folds(config_args: list[str]) -> tuple[list[int], str]:
    """Every fold of a run config's protocol, counted on its corpus (parsed once, in this process).

    Args:
        config_args: ``--config ...`` and extra arguments of the run (no subcommand).

    Returns:
        The folds ``0..n-1`` and a description (protocol and corpus).
    """
    from ser_lightning.data.splits import num_folds

    data = _data_instance(config_args)
    protocol = getattr(data, "protocol", "none")
    if protocol == "none" or not hasattr(data, "num_folds"):
        return [0], f"{type(data).__name__} has no protocol folds: one fold"
    count = num_folds(data.records(), protocol, data.num_folds)
    return list(range(count)), f"all {count} folds of {protocol} on {getattr(data, 'corpus_name', type(data).__name__)}"


def make_plan(spec: ExperimentSpec, folds: list[int] | None = None) -> Plan:
    """The cells of a spec.

    Args:
        spec: the experiment spec.
        folds: the folds, when already known (skips resolving ``folds: all``).

    Returns:
        The plan.
    """
    base_args = [arg for path in spec.base for arg in ("--config", path)] + list(spec.args)
    if folds is not None:
        source = "given"
    elif spec.folds == "all":
        folds, source = resolve_folds(base_args)
    else:
        folds, source = list(spec.folds), "listed in the spec"
    root = spec.directory.resolve()
    cells = []
    for fold in folds:
        for seed in spec.seeds:
            for variant, variant_args in spec.variants.items():
                directory = root / variant / f"fold{fold}-seed{seed}"
                args = (
                    "fit",
                    *base_args,
                    "--trainer.enable_progress_bar",
                    "false",
                    *variant_args,
                    "--seed_everything",
                    str(seed),
                    "--data.init_args.fold",
                    str(fold),
                    "--trainer.default_root_dir",
                    str(directory),
                    "--experiment_cell",
                    f"{spec.name}/{variant}/fold{fold}-seed{seed}",
                )
                cells.append(Cell(variant, fold, seed, directory, args))
    return Plan(spec, list(folds), cells, source)
