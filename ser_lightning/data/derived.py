"""Splits whose audio is replaced by a derived copy of the corpus (noisy at an SNR, or that mixture enhanced).

The matched and multi-SNR conditions of Triantafyllopoulos et al. (2019, §4) train on noisy or enhanced noisy
audio that is made once, not per epoch. A DataModule given ``derived: <DerivedAudio>`` makes its split as usual
(the protocol and the leakage checks see the source corpus), then reads the utterances of the named splits
(default: training and validation) from the derived copy instead; the test split stays clean, for the test-time
callbacks (``NoiseRobustness``) to perturb.

:class:`DerivedAudio` is the interface the data layer needs; the implementation that mixes noise and runs an
enhancer is :class:`ser_lightning.models.derive.DerivedCorpus` (it lives above the data layer because it loads a
trained enhancer).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ser_lightning.data.splits import Split

if TYPE_CHECKING:
    from ser_lightning.data.base import SERDataModule

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


class DerivedAudio(ABC):
    """Where each utterance's derived audio is, for the splits it replaces.

    Attributes:
        splits: the splits whose audio is replaced (``train``, ``val``, ``test``).
        noise_bank: the noise bank the derivation drew from (``None`` when it adds no noise); with
            :attr:`noise_part` and :attr:`noise_categories` it lets ``NoiseRobustness`` stamp its cells
            against the training noise.
    """

    splits: tuple[str, ...] = ("train", "val")
    noise_bank: Any = None
    noise_part: str | None = None
    noise_categories: list[str] = []

    @abstractmethod
    def paths(self, data: SERDataModule) -> dict[str, str]:
        """``{utt_id: derived audio path}`` for the utterances of ``data`` (made, or found in a cache).

        An utterance missing from the mapping could not be derived; it is left out of the replaced splits as a
        logged, counted skip.
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (settings, cache folder), stamped in the run's hyperparameters."""


def check_splits(splits: Sequence[str]) -> tuple[str, ...]:
    """Validates the names of the splits a derivation replaces."""
    names = tuple(splits)
    unknown = [s for s in names if s not in SPLIT_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"derived splits must be distinct names among {list(SPLIT_NAMES)}, got {list(splits)}")
    return names


def apply_derived(
    split: Split, paths: Mapping[str, str], splits: Sequence[str], skip: Callable[[str, str, str], None]
) -> Split:
    """``split`` with the records of ``splits`` reading their audio from ``paths``.

    Args:
        split: the fold's split of the source corpus.
        paths: ``{utt_id: derived path}`` (:meth:`DerivedAudio.paths`).
        splits: the parts to replace.
        skip: called as ``skip(path, reason, kind)`` for a record without derived audio (it is dropped).

    Returns:
        A new split; the other parts and the stamp are unchanged (the stamp gains ``derived_splits``).
    """
    parts = split.parts()
    for name in splits:
        kept = []
        for record in parts[name]:
            path = paths.get(record.utt_id)
            if path is None:
                skip(record.path, "no derived audio (the derivation skipped it)", "derive")
                continue
            kept.append(replace(record, path=str(path), checksum=None))
        parts[name] = kept
    stamp = {**split.stamp, "derived_splits": list(splits)}
    return Split(parts["train"], parts["val"], parts["test"], stamp)
