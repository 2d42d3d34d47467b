"""Experiments: a base run config x folds x seeds x variants, run cell by cell, collected into a result card.

``python -m ser_lightning.experiment run configs/experiments/<name>.yaml [--dry-run] [--jobs N]``; see
``docs/experiments.md``.
"""

from ser_lightning.experiment.collect import collect
from ser_lightning.experiment.local import CellOutcome, LocalExecutor, cell_state
from ser_lightning.experiment.plan import Cell, Plan, make_plan
from ser_lightning.experiment.spec import ExperimentSpec, ExperimentSpecError, load_spec, parse_spec

__all__ = [
    "Cell",
    "CellOutcome",
    "ExperimentSpec",
    "ExperimentSpecError",
    "LocalExecutor",
    "Plan",
    "cell_state",
    "collect",
    "load_spec",
    "make_plan",
    "parse_spec",
]
