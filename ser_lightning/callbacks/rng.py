"""Global random states in every checkpoint, restored on resume: the in-model randomness continues identically."""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class RandomStateCheckpoint(Callback):
    """Saves python's, numpy's, torch's CPU (and CUDA) random states in every checkpoint and restores them on resume.

    The states are those of the moment the checkpoint is written (for ``last.ckpt``: the end of an epoch's
    validation). They are put back at the start of the first training epoch that runs after the resume, i.e.
    after Lightning's restore and after the sanity check (whose iterators and hooks must not shift them), so
    dropout, mixup and the random segment crops of ``training_step`` draw what the uninterrupted run drew.
    The CLI adds it to every run (docs/resume.md). The data side (order, crops, augmentation) does not depend on
    these states: see :mod:`ser_lightning.data.sampling`.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The current global random states (called when a checkpoint is written).

        numpy's state is stored as plain Python values, so the checkpoint still loads with ``weights_only=True``.
        """
        states = _collect_rng_states(include_cuda=True)
        name, keys, pos, has_gauss, cached = states["numpy"]
        states["numpy"] = (str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached))
        return {"rng": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keeps the checkpoint's random states until the next training epoch starts."""
        self._pending = state_dict.get("rng")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Restores the random states of a resumed checkpoint, once."""
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        if not state.get("torch.cuda"):
            state = {k: v for k, v in state.items() if k != "torch.cuda"}
        name, keys, pos, has_gauss, cached = state["numpy"]
        state["numpy"] = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        _set_rng_states(state)
        log.info("restored the random states of the checkpoint (epoch %d)", trainer.current_epoch)
