"""The run's ``results.json`` and figures: one place that writes them, for the task and every callback."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"


def run_dir(trainer: pl.Trainer) -> Path:
    """The run's log directory (the logger's, else the trainer's root dir), created if needed.

    Under DDP this is a collective (``trainer.log_dir`` broadcasts): call it on every process.
    """
    path = Path(trainer.log_dir or trainer.default_root_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def jsonable(value: Any) -> Any:
    """``value`` with tensors, arrays and numpy scalars turned into (nested) lists and Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # tensors and numpy arrays/scalars
        return value.tolist()
    return value


def update_results(directory: str | Path, updates: dict[str, Any], merge: bool = False) -> Path:
    """Merges ``updates`` into ``<directory>/results.json``, written atomically.

    Args:
        directory: the run directory.
        updates: top-level keys to set (tensors and arrays are converted to lists).
        merge: merge dictionary values into the existing dictionaries of the same keys (one level deep, e.g. one
            more corpus into ``cross_corpus``) instead of replacing them.

    Returns:
        The path of the results file.
    """
    path = Path(directory) / RESULTS_FILE
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; starting a new results file", path)
    for key, value in jsonable(updates).items():
        if merge and isinstance(value, dict) and isinstance(current.get(key), dict):
            current[key] = {**current[key], **value}
        else:
            current[key] = value
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(current, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def stop_reason(trainer: pl.Trainer) -> dict[str, Any]:
    """Why training stopped: early stopping, ``max_epochs``/``max_steps``, the ``max_time`` budget, or an interruption.

    Args:
        trainer: a trainer whose ``fit`` has ended.

    Returns:
        ``{"reason": "early_stopping" | "max_epochs" | "max_steps" | "time_budget" | "interrupted" | "other",
        "epochs_completed": int, "global_step": int, "detail": str}``.
    """
    from lightning.pytorch.callbacks import EarlyStopping, Timer

    epochs = int(trainer.current_epoch)
    info: dict[str, Any] = {"epochs_completed": epochs, "global_step": int(trainer.global_step)}
    early = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping) and c.stopped_epoch > 0), None)
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if trainer.interrupted:
        return {"reason": "interrupted", **info, "detail": f"interrupted after {epochs} epoch(s)"}
    if early is not None:
        return {"reason": "early_stopping", **info,
                "detail": f"early stopping on {early.monitor} at epoch {early.stopped_epoch} "
                          f"(patience {early.patience})"}  # fmt: skip
    if timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        return {"reason": "time_budget", **info, "detail": f"the max_time budget ran out after {epochs} epoch(s)"}
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return {"reason": "max_steps", **info, "detail": f"max_steps {trainer.max_steps} reached"}
    if trainer.max_epochs not in (None, -1) and epochs >= trainer.max_epochs:
        return {"reason": "max_epochs", **info, "detail": f"max_epochs {trainer.max_epochs} reached"}
    return {"reason": "other", **info, "detail": "training stopped (should_stop set by a callback or the model)"}


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str) -> Any:
    """A matplotlib figure of a confusion matrix: counts, with row-normalised recall as colour."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    recall = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.7 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(recall, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                str(int(matrix[i, j])),
                ha="center",
                va="center",
                color="white" if recall[i, j] > 0.5 else "black",
                fontsize=8,
            )
    fig.colorbar(image, ax=ax, fraction=0.046, label="recall")
    fig.tight_layout()
    return fig


def log_figure(trainer: pl.Trainer, directory: Path, name: str, figure: Any) -> Path:
    """Saves a figure as ``<run dir>/<name>.png`` and sends it to every logger that takes images.

    TensorBoard gets it through ``add_figure``, Weights & Biases through ``log_image``; other loggers (CSV)
    only have the PNG file.

    Args:
        trainer: the trainer whose loggers receive the figure.
        directory: the run directory (from :func:`run_dir`).
        name: file stem and logger key.
        figure: a matplotlib figure (closed afterwards).

    Returns:
        The PNG's path.
    """
    import matplotlib.pyplot as plt
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    path = Path(directory) / f"{name}.png"
    figure.savefig(path, dpi=120)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(name, figure, global_step=trainer.global_step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=name, images=[str(path)], step=trainer.global_step)
    plt.close(figure)
    return path
