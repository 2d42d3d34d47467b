"""Feature normalisation between the front-end and the network, and the training-split statistics it needs.

:class:`FeatureNormalisation` is a small pure module with three modes:

* ``none``: the network sees the front-end's features as they are.
* ``utterance``: per-utterance mean-variance normalisation of each feature row, the statistics taken over the
  utterance's valid frames only (padding excluded).
* ``train``: each feature row standardised with the mean and standard deviation of that row over every valid
  frame of the training split, computed once before training (:func:`feature_moments` over
  :func:`training_split_loader`) and kept as buffers, so a checkpoint carries them and ``test`` / ``predict`` on a
  loaded checkpoint use them without recomputing.

The classification base applies it to the network's input segments with the statistics of the segment's whole
utterance: the front-end pads with the features of silence (``frontend.pad_value``), and the same affine map
sends that padding to the *normalised* silence value ``(pad_value - mean) / std``, which is what a segment
padded after normalisation must contain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

NormMode = Literal["none", "utterance", "train"]
NORM_MODES = ("none", "utterance", "train")


def valid_frames(features: Tensor, frames: Tensor) -> Tensor:
    """The boolean mask ``[B, 1, 1, N]`` of the valid (non-padded) frames of ``[B, 1, F, N]`` features."""
    steps = torch.arange(features.shape[-1], device=features.device)
    return (steps[None, :] < frames.to(features.device)[:, None])[:, None, None, :]


def feature_moments(features: Tensor, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Count, sum and sum of squares of each feature row over the valid frames of a batch (float64).

    Args:
        features: ``[B, 1, F, N]`` features.
        frames: ``[B]`` valid frames.

    Returns:
        ``(count [], sum [F], sum of squares [F])``, summable across batches and processes.
    """
    mask = valid_frames(features, frames).to(torch.float64)
    x = features.detach().to(torch.float64)
    count = mask.sum()
    total = (x * mask).sum(dim=(0, 1, 3))
    squares = (x * x * mask).sum(dim=(0, 1, 3))
    return count, total, squares


def moments_to_stats(count: Tensor, total: Tensor, squares: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Mean and (population) standard deviation, floored at ``eps``, from summed moments."""
    n = count.clamp(min=1)
    mean = total / n
    var = (squares / n - mean * mean).clamp(min=0)
    return mean, var.sqrt().clamp(min=eps)


class FeatureNormalisation(nn.Module):
    """Normalises ``[B, 1, F, N]`` features per feature row: none, per utterance, or with training statistics.

    The buffers ``mean``, ``std`` (``[F]``, float32) and ``count`` (frames they were computed over; 0 = not yet
    fitted) are persistent, so the training statistics travel in the checkpoint. They start empty and take
    their size from :meth:`set_statistics` or from the state dict being loaded.

    Args:
        mode: ``none``, ``utterance`` or ``train`` (see the module's docstring).
        eps: floor of the standard deviations (a constant row is not blown up).
    """

    def __init__(self, mode: NormMode = "none", eps: float = 1e-5) -> None:
        super().__init__()
        if mode not in NORM_MODES:
            raise ValueError(f"feature_norm must be one of {NORM_MODES}, got {mode!r}")
        self.mode = mode
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("std", torch.ones(0))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @property
    def fitted(self) -> bool:
        """Whether training statistics are stored."""
        return bool(self.count > 0) and self.mean.numel() > 0

    def set_statistics(self, count: Tensor, total: Tensor, squares: Tensor) -> None:
        """Stores the training statistics from summed moments (:func:`feature_moments`)."""
        mean, std = moments_to_stats(count, total, squares, self.eps)
        device = self.count.device
        self.mean = mean.to(device=device, dtype=torch.float32)
        self.std = std.to(device=device, dtype=torch.float32)
        self.count = count.detach().to(device=device, dtype=torch.float64).reshape(())

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # The buffers take the size of the checkpoint's statistics (they start empty).
        for name in ("mean", "std"):
            value = state_dict.get(prefix + name)
            if value is not None and value.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(value, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def statistics(self, features: Tensor, frames: Tensor) -> tuple[Tensor, Tensor] | None:
        """Per-utterance ``(mean, std)`` of shape ``[B, 1, F, 1]`` to normalise with, or ``None`` for ``none``.

        Args:
            features: ``[B, 1, F, N]`` features of whole utterances (padding past ``frames``).
            frames: ``[B]`` valid frames.

        Raises:
            RuntimeError: ``train`` mode before any training statistics were stored.
        """
        if self.mode == "none":
            return None
        if self.mode == "train":
            if not self.fitted:
                raise RuntimeError(
                    "feature_norm='train' has no training statistics yet: fit the model (they are computed on the "
                    "training split before the first epoch) or load a checkpoint that has them"
                )
            if self.mean.numel() != features.shape[2]:
                raise ValueError(f"{self.mean.numel()} feature rows in the statistics, {features.shape[2]} given")
            shape = (1, 1, -1, 1)
            return self.mean.to(features.dtype).view(shape), self.std.to(features.dtype).view(shape)
        mask = valid_frames(features, frames).to(features.dtype)
        n = mask.sum(dim=-1, keepdim=True).clamp(min=1)
        mean = (features * mask).sum(dim=-1, keepdim=True) / n
        var = (((features - mean) * mask) ** 2).sum(dim=-1, keepdim=True) / n
        return mean, var.sqrt().clamp(min=self.eps)

    @staticmethod
    def apply(x: Tensor, stats: tuple[Tensor, Tensor] | None) -> Tensor:
        """``(x - mean) / std`` with statistics from :meth:`statistics` (indexed per row of ``x``), or ``x``."""
        if stats is None:
            return x
        mean, std = stats
        return (x - mean) / std

    def forward(self, features: Tensor, frames: Tensor) -> Tensor:
        """Normalised features of whole utterances; padded frames become the normalised silence value."""
        return self.apply(features, self.statistics(features, frames))

    def extra_repr(self) -> str:
        """Mode, number of rows and frames of the stored statistics."""
        return f"mode={self.mode!r}, rows={self.mean.numel()}, frames={int(self.count)}"


def training_split_loader(trainer: Any) -> tuple[Iterable[dict[str, Any]], str]:
    """The training audio to compute feature statistics on, and a description of what it is.

    With a toolkit DataModule (one with ``split`` and ``make_dataset``) this is the training split's utterances,
    whole and *without* augmentation (``make_dataset`` augments and crops only the split named ``train``), in
    a plain sequential loader. Otherwise it is the DataModule's ``train_dataloader()`` as it is (augmented and
    cropped if it does so), or the loader given to ``trainer.fit``. Validation and test audio never appear.

    Args:
        trainer: the trainer (its ``datamodule`` or its fit loop's data source).

    Raises:
        RuntimeError: no training data can be found.
    """
    datamodule = getattr(trainer, "datamodule", None)
    split = getattr(datamodule, "split", None)
    if datamodule is not None and split is not None and hasattr(datamodule, "make_dataset"):
        records = split.parts()["train"]
        dataset = datamodule.make_dataset("statistics", records)  # not "train": no augmentation, no crop
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=int(getattr(datamodule, "eval_batch_size", None) or getattr(datamodule, "batch_size", 16)),
            shuffle=False,
            num_workers=int(getattr(datamodule, "num_workers", 0)),
            collate_fn=getattr(datamodule, "collate_fn", None),
        )
        return loader, f"training split ({len(records)} utterances, whole, unaugmented)"
    if datamodule is not None and hasattr(datamodule, "train_dataloader"):
        return datamodule.train_dataloader(), "the DataModule's train_dataloader() (as it augments and crops)"
    source = getattr(getattr(trainer, "fit_loop", None), "_data_source", None)
    if source is not None and source.is_defined():
        return source.dataloader(), "the training loader given to fit() (as it augments and crops)"
    raise RuntimeError("no training data to compute feature statistics on (no DataModule, no train loader)")


@torch.no_grad()
def training_feature_moments(
    frontend: nn.Module, trainer: Any, device: torch.device
) -> tuple[tuple[Tensor, Tensor, Tensor], str]:
    """Sums :func:`feature_moments` of ``frontend``'s features over the training split, across processes.

    Under DDP each process takes every ``world_size``-th batch (from its ``global_rank``) and the counts, sums and
    sums of squares are summed over processes, so every process ends with the statistics of the whole split.

    Args:
        frontend: the model's front-end.
        trainer: the trainer (data, world size, rank, strategy for the reduction).
        device: where the front-end runs.

    Returns:
        ``((count, sum, sum of squares), description of the data)``.
    """
    loader, description = training_split_loader(trainer)
    world = int(getattr(trainer, "world_size", 1) or 1)
    rank = int(getattr(trainer, "global_rank", 0) or 0)
    count = torch.zeros((), dtype=torch.float64, device=device)
    total: Tensor | None = None
    squares: Tensor | None = None
    for index, batch in enumerate(loader):
        if index % world != rank:
            continue
        features, frames = frontend(batch["waveform"].to(device), torch.as_tensor(batch["length"]).to(device))
        c, s, q = feature_moments(features, frames)
        count = count + c
        total = s if total is None else total + s
        squares = q if squares is None else squares + q
    if total is None or squares is None:  # this process had no batch: it still takes part in the reduction
        rows = int(frontend(torch.zeros(1, frontend.frame_length, device=device))[0].shape[2])
        total = torch.zeros(rows, dtype=torch.float64, device=device)
        squares = torch.zeros(rows, dtype=torch.float64, device=device)
    if world > 1:
        packed = torch.cat([count.reshape(1), total, squares])
        packed = trainer.strategy.reduce(packed, reduce_op="sum")
        count, total, squares = packed[0], packed[1 : 1 + total.numel()], packed[1 + total.numel() :]
    if float(count) <= 0:
        raise RuntimeError(f"no training frames to compute feature statistics on ({description})")
    return (count, total, squares), description
