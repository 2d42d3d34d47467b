"""Training order and per-item randomness as functions of (seed, epoch, index), so that a resumed run is exact.

:class:`EpochSampler` shuffles with a generator seeded by ``seed + epoch`` (Lightning calls ``set_epoch`` on every
train sampler before each epoch, also after a resume) and yields *keys* that carry the epoch with the index:
``key = (epoch + 1) * len(dataset) + index``. The dataset decodes them with :func:`decode_key` and draws its crop
start and augmentation seed from :func:`item_generator`. The key is what travels to the DataLoader workers, so
persistent workers (which keep their own copy of the dataset, out of reach of a ``set_epoch`` on the main process'
copy) still see the right epoch. A key below ``len(dataset)`` is a plain index (no epoch: e.g. ``dataset[3]`` or
a plain shuffling loader), for which the dataset keeps drawing from the global random generators as before.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

log = logging.getLogger(__name__)


def encode_key(epoch: int, index: int, size: int) -> int:
    """The key of item ``index`` in epoch ``epoch`` of a dataset of ``size`` items (see the module docstring)."""
    return (int(epoch) + 1) * int(size) + int(index)


def decode_key(key: int, size: int) -> tuple[int | None, int]:
    """``(epoch, index)`` from a key of :func:`encode_key`; ``(None, key)`` for a plain index (``key < size``)."""
    key = int(key)
    if key < size or size <= 0:
        return None, key
    epoch, index = divmod(key, size)
    return epoch - 1, index


def item_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed that depends only on ``(seed, epoch, index, stream)`` (one ``stream`` per use, e.g. crop)."""
    words = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index), int(stream)]).generate_state(2)
    return int((int(words[0]) << 32 | int(words[1])) & (2**63 - 1))


def item_generator(seed: int, epoch: int, index: int, stream: int = 0) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded by :func:`item_seed`."""
    return torch.Generator().manual_seed(item_seed(seed, epoch, index, stream))


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seeds python's :mod:`random`, numpy's and torch's CPU global generators for the block, then restores them.

    For a transform that draws from the global generators (anything but a
    :class:`~ser_lightning.audio.WaveformAugmentation`, whose :meth:`augment` takes a seed).
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class EpochSampler(DistributedSampler):
    """A (distributed) shuffling sampler whose order depends only on ``(seed, epoch)`` and that yields epoch keys.

    A :class:`~torch.utils.data.DistributedSampler` (so Lightning neither replaces nor wraps it under DDP, and calls
    its :meth:`set_epoch` every epoch) that yields :func:`encode_key` keys instead of bare indices. Without a
    process group it is a single-replica sampler. An iteration that follows another without a :meth:`set_epoch` in
    between (a plain training loop outside Lightning) counts as the next epoch.

    Args:
        dataset: the training dataset (sized).
        seed: the shuffle seed (the run's ``seed_everything`` seed).
        num_replicas: number of processes (1 without DDP).
        rank: this process' rank.
        shuffle: shuffle (else the natural order, still as keys).
    """

    def __init__(self, dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self._epoch_used = False

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of the next iteration (Lightning calls it before every epoch)."""
        super().set_epoch(epoch)
        self._epoch_used = False

    def __iter__(self) -> Iterator[int]:
        if self._epoch_used:  # iterated again without set_epoch: the next epoch
            self.epoch += 1
        self._epoch_used = True
        size = len(self.dataset)
        epoch = self.epoch
        return (encode_key(epoch, index, size) for index in super().__iter__())


class SkippingDataLoader(DataLoader):
    """A DataLoader that counts, in the main process, the utterances its dataset could not read.

    Each batch of :func:`~ser_lightning.data.dataset.collate_utterances` lists the items that failed when read
    (in a worker process or not) under ``failed``; they are recorded in the dataset's ``read_failures`` (the
    main process' copy of the dataset, the one the DataModule describes) with a warning naming each file once.
    A batch left empty is not yielded (a model step needs at least one utterance), unless the dataset's
    ``keep_empty_batches`` is set (``predict`` writes a row for every failed file).
    """

    def __iter__(self):
        dataset = self.dataset
        failures = getattr(dataset, "read_failures", None)
        keep_empty = getattr(dataset, "keep_empty_batches", False)
        for batch in super().__iter__():
            if isinstance(batch, dict) and batch.get("failed"):
                for item in batch["failed"]:
                    if failures is not None and item["path"] not in failures:
                        log.warning("skipping %s: %s", item["path"], item["reason"])
                        failures[item["path"]] = {"path": item["path"], "reason": item["reason"],
                                                  "kind": item["kind"], "stage": "read"}  # fmt: skip
                if len(batch.get("utt_id", ())) == 0 and not keep_empty:
                    continue
            yield batch


class ClassBalancedSampler(EpochSampler):
    """An :class:`EpochSampler` that draws every class equally often: with replacement, weight ``1 / count(class)``.

    Each epoch draws ``len(dataset)`` items (shared out among the processes) with probability inversely
    proportional to the size of the item's class, so each class makes up ``1 / num_classes`` of the draws in
    expectation while an epoch keeps its length. The draws depend only on ``(seed, epoch)``, so a resumed run is
    exact, and they are yielded as epoch keys like :class:`EpochSampler`'s. For the training split only: evaluation
    sees every utterance once.

    Args:
        dataset: the training dataset (sized).
        labels: the class index of every item of ``dataset``, in order.
        seed: the draws' seed (the run's ``seed_everything`` seed).
        num_replicas: number of processes (1 without DDP).
        rank: this process' rank.
    """

    def __init__(self, dataset, labels: list[int], seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, seed=seed, num_replicas=num_replicas, rank=rank, shuffle=True)
        if len(labels) != len(dataset):
            raise ValueError(f"{len(labels)} labels for a dataset of {len(dataset)} items")
        if not labels:
            raise ValueError("a class-balanced sampler needs a non-empty training split")
        index = torch.as_tensor(labels, dtype=torch.long)
        counts = torch.bincount(index).double()
        self.weights = (1.0 / counts)[index]
        """Each item's draw weight, ``1 / count(its class)``."""

    def __iter__(self) -> Iterator[int]:
        if self._epoch_used:  # iterated again without set_epoch: the next epoch
            self.epoch += 1
        self._epoch_used = True
        generator = torch.Generator().manual_seed(int(self.seed) + int(self.epoch))
        draws = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator)
        mine = draws[self.rank : self.total_size : self.num_replicas].tolist()
        size, epoch = len(self.dataset), self.epoch
        return (encode_key(epoch, index, size) for index in mine)
